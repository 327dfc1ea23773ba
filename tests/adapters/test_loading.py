"""Loading a diffusers-backed adapter: offline switches, dtype keyword, and exit-3 errors that name the fix."""
from __future__ import annotations

import pytest

from multiid_bench.adapters import get_adapter
from multiid_bench.errors import MissingDependencyError, MissingWeightsError


class _FakePipeline:
    calls: list = []
    behaviour: BaseException | None = None

    @classmethod
    def from_pretrained(cls, model_id, **kwargs):
        cls.calls.append((model_id, kwargs))
        if cls.behaviour is not None:
            raise cls.behaviour
        return cls()

    def to(self, device):
        self.device = device
        return self

    def set_progress_bar_config(self, **kw):
        self.progress = kw

    def enable_model_cpu_offload(self):
        self.offloaded = True


@pytest.fixture
def fake_diffusers(monkeypatch):
    import diffusers

    _FakePipeline.calls, _FakePipeline.behaviour = [], None
    monkeypatch.setattr(diffusers, "OmniGenPipeline", _FakePipeline, raising=False)
    return _FakePipeline


def test_offline_load_passes_local_files_only_and_dtype(fake_diffusers, monkeypatch):
    import torch

    monkeypatch.setenv("MBENCH_OFFLINE", "1")
    adapter = get_adapter("omnigen", model_id="/models/omnigen", dtype="float16")
    adapter.load("cpu")
    (model_id, kwargs), = fake_diffusers.calls
    assert model_id == "/models/omnigen" and kwargs["local_files_only"] is True
    assert kwargs.get("dtype", kwargs.get("torch_dtype")) is torch.float16
    assert adapter.pipe.device == "cpu" and adapter.pipe.progress == {"disable": True}
    get_adapter("omnigen", offload="model").load("cuda")  # offload path does not move to the device itself


def test_missing_checkpoint_and_backend_are_exit_3(fake_diffusers, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake_diffusers.behaviour = OSError("We couldn't connect to 'https://huggingface.co'")
    with pytest.raises(MissingWeightsError, match="hf download Shitao/OmniGen-v1-diffusers") as e:
        get_adapter("omnigen").load("cpu")
    assert "Offline mode is on" in str(e.value) and e.value.exit_code == 3
    fake_diffusers.behaviour = ImportError("requires the sentencepiece library")
    with pytest.raises(MissingDependencyError, match=r"multiid-bench\[omnigen\]"):
        get_adapter("omnigen").load("cpu")


def test_pipeline_class_missing_from_old_diffusers(monkeypatch):
    adapter = get_adapter("flux-kontext")
    monkeypatch.setattr(adapter, "pipeline_class_name", lambda: "NoSuchKontextPipeline")
    with pytest.raises(MissingDependencyError, match=r"diffusers >= 0\.35\.0"):
        adapter.load("cpu")
