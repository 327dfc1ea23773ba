"""Issue 17: breakages found by reading every adapter against its upstream code, each pinned by a test.

Upstream packages cannot be installed here, so the worker scripts are driven in-process with fake upstream
modules that record what the real ones would be asked to do.
"""
from __future__ import annotations

import os
import sys
import textwrap
import types
from pathlib import Path

import pytest
from PIL import Image

from multiid_bench.adapters import get_adapter
from multiid_bench.adapters._worker import WORKER_DEFAULTS, WORKERS_DIR, WorkerAdapter, WorkerLoadError
from multiid_bench.adapters.base import Capabilities
from multiid_bench.adapters.pipeline import Request
from multiid_bench.errors import EXIT_MISSING

SEED = 1234


@pytest.fixture
def worker_module(monkeypatch):
    """Import a worker script the way its environment does (``_serve`` on the path)."""
    monkeypatch.syspath_prepend(str(WORKERS_DIR))

    def load(name: str):
        for mod in (name, "_serve"):
            sys.modules.pop(mod, None)
        return __import__(name)

    return load


def _fake_modules(monkeypatch, modules: dict[str, dict]) -> None:
    for name, attrs in modules.items():
        mod = types.ModuleType(name)
        for k, v in attrs.items():
            setattr(mod, k, v)
        monkeypatch.setitem(sys.modules, name, mod)


# ------------------------------------------------------------------------------------------ UMO on UNO
def test_umo_moves_the_model_back_to_the_device_after_load_ckpt(monkeypatch, worker_module):
    events: list[tuple[str, str]] = []

    class Model:
        device = "cuda:0"

        def to(self, device):
            events.append(("to", str(device)))
            self.device = str(device)
            return self

    class UNOPipeline:
        def __init__(self, model_type, device, offload, only_lora, lora_rank):
            self.model = Model()
            self.model.device = str(device)

        def load_ckpt(self, path):  # upstream: load_file(path, device="cpu") + load_state_dict(assign=True)
            events.append(("load_ckpt", path))
            self.model.device = "cpu"

    _fake_modules(monkeypatch, {"uno": {}, "uno.flux": {},
                                "uno.flux.pipeline": {"UNOPipeline": UNOPipeline, "preprocess_ref": lambda im, s: im}})
    worker = worker_module("uno_worker")
    ckpt = Path(__file__)  # any existing file stands in for UMO_UNO.safetensors (a path skips the download)
    settings = {**get_adapter("umo").worker_settings(), "umo_ckpt": str(ckpt)}
    state = worker.load(settings, "cpu")
    assert events == [("load_ckpt", str(ckpt)), ("to", "cpu")]
    assert state["pipe"].model.device == "cpu"
    # plain UNO loads no checkpoint and moves nothing
    events.clear()
    worker.load(get_adapter("uno").worker_settings(), "cpu")
    assert events == []


# ------------------------------------------------------------------------------------------ USO .env
def test_uso_reads_the_checkouts_dotenv_before_importing_uso(monkeypatch, tmp_path, worker_module):
    lora, proj = tmp_path / "dit_lora.safetensors", tmp_path / "projector.safetensors"
    lora.write_bytes(b"x")
    proj.write_bytes(b"x")
    (tmp_path / ".env").write_text(textwrap.dedent(f"""\
        # USO weights
        LORA={lora}
        export PROJECTION_MODEL="{proj}"
        SIGLIP_PATH='{tmp_path}/siglip'  # comment after a quoted value
        FLUX_DEV=/from/dotenv
    """))
    for key in ("LORA", "PROJECTION_MODEL", "SIGLIP_PATH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("FLUX_DEV", "/already/set")  # the environment wins, as with python-dotenv
    monkeypatch.chdir(tmp_path)
    seen: dict[str, object] = {}

    class USOPipeline:
        def __init__(self, model_type, device, offload, only_lora, lora_rank, hf_download):
            # what uso/flux/util.py reads with hf_download=False
            seen.update(lora=os.environ.get("LORA"), proj=os.environ.get("PROJECTION_MODEL"),
                        flux=os.environ.get("FLUX_DEV"), hf_download=hf_download)
            self.model = types.SimpleNamespace()

    class Siglip:
        @classmethod
        def from_pretrained(cls, path):
            seen["siglip"] = path
            return cls()

        def eval(self):
            return self

        def to(self, device):
            return self

    _fake_modules(monkeypatch, {
        "uso": {}, "uso.flux": {}, "uso.flux.pipeline": {"USOPipeline": USOPipeline, "preprocess_ref": None},
        "transformers": {"SiglipImageProcessor": Siglip, "SiglipVisionModel": Siglip}})
    worker = worker_module("uno_worker")
    worker.load(get_adapter("uso").worker_settings(), "cpu")
    assert seen == {"lora": str(lora), "proj": str(proj), "flux": "/already/set", "hf_download": False,
                    "siglip": f"{tmp_path}/siglip"}

    # without the files: a missing-weights error with the fix, before USO is touched
    lora.unlink()
    monkeypatch.delenv("LORA")
    seen.clear()
    with pytest.raises(worker.MissingWeights, match=r"USO needs LORA .*weights/downloader.py"):
        worker.load(get_adapter("uso").worker_settings(), "cpu")
    assert seen == {}


# ------------------------------------------------------------------------------------------ InstantID
def test_instantid_uses_infer_py_negative_prompt_and_keeps_the_reference_aspect(make_case, fake_pipe, tmp_path):
    from multiid_bench.data.case import Case

    ref = tmp_path / "tall.png"
    Image.new("RGB", (300, 400), (200, 10, 10)).save(ref)
    case = Case(id="p1_tall", subset="p1", prompt="A portrait.", gt=None, refs=(ref,), boxes=(), num_persons=1)
    pipe = fake_pipe(output="worker")
    res = get_adapter("instantid", pipe=pipe).generate(case, SEED)
    kw = pipe.calls[-1]
    assert kw["negative_prompt"] == (
        "(lowres, low quality, worst quality:1.2), (text:1.2), watermark, painting, drawing, illustration, glitch, "
        "deformed, mutated, cross-eyed, ugly, disfigured (lowres, low quality, worst quality:1.2), (text:1.2), "
        "watermark, painting, drawing, illustration, glitch,deformed, mutated, cross-eyed, ugly, disfigured")
    # resize_img: short side 300 -> 1024 gives 1024x1365, long side -> 1280 gives 960x1280 (multiples of 64)
    assert (kw["width"], kw["height"]) == (960, 1280) and kw["face_size"] == [960, 1280]
    assert res.record.requested_size == (960, 1280)


def test_instantid_worker_resizes_the_face_to_the_sent_size(monkeypatch, worker_module):
    _fake_modules(monkeypatch, {})
    worker = worker_module("instantid_worker")
    seen = {}

    class App:
        def get(self, bgr):
            seen.setdefault("sizes", []).append(bgr.shape[:2])
            return [{"bbox": [0, 0, 10, 10], "kps": "KPS", "embedding": "EMB"}]

    class Pipe:
        def set_ip_adapter_scale(self, s):
            pass

        def __call__(self, **kw):
            seen["call"] = kw
            return types.SimpleNamespace(images=["IMG"])

    def draw_kps(image, kps):
        seen["kps_image"] = image.size
        return image

    state = {"pipe": Pipe(), "app": App(), "draw_kps": draw_kps, "device": "cpu"}
    # kps_source="gt": the face keeps its own aspect (960x1280), the pose image gives the output size (1280x960)
    request = {"face_image": Image.new("RGB", (300, 400)), "face_size": [960, 1280],
               "pose_image": Image.new("RGB", (800, 600)), "width": 1280, "height": 960, "prompt": "p",
               "negative_prompt": "n", "num_inference_steps": 1, "guidance_scale": 5.0,
               "controlnet_conditioning_scale": 0.8, "ip_adapter_scale": 0.8}
    assert worker.generate(state, request, SEED) == "IMG"
    assert seen["sizes"] == [(1280, 960), (960, 1280)]  # (H, W): the face first, then the pose image
    assert seen["kps_image"] == (1280, 960)
    assert "width" not in seen["call"] and seen["call"]["image_embeds"] == "EMB"  # output follows the kps image


# ------------------------------------------------------------------------------------------ OmniGen2
def test_omnigen2_align_res_follows_the_upstream_default(make_case, fake_pipe):
    pipe = fake_pipe(output="worker")
    get_adapter("omnigen2", pipe=pipe).generate(make_case(1, case_id="p1_o"), SEED)
    assert pipe.calls[-1]["align_res"] is True  # inference.py passes none: the pipeline's default True
    get_adapter("omnigen2", pipe=pipe, align_res=False).generate(make_case(1, case_id="p1_o"), SEED)
    assert pipe.calls[-1]["align_res"] is False
    choice = get_adapter("omnigen2").capabilities.presets["upstream"]["align_res"]
    assert choice.value is True and "inference.py" in choice.source


# ------------------------------------------------------------------------------------------ paper preset
@pytest.mark.parametrize("name", ["flux-kontext", "qwen-image-edit"])
def test_paper_preset_kontext_and_qwen_are_not_applicable_on_multi_person_cases(name, make_case, fake_pipe):
    pipe = fake_pipe()
    adapter = get_adapter(name, pipe=pipe)
    assert adapter.settings["preset"] == "paper"
    for n in (2, 3, 4):
        case = make_case(n, case_id=f"p{min(n, 3)}_{name}_{n}")
        assert adapter.not_applicable_reason(case) is not None
        res = adapter.generate(case, SEED)
        assert res.status == "not_applicable" and "single-identity cases only" in res.reason
    assert pipe.calls == []
    assert adapter.generate(make_case(1, case_id="p1_single"), SEED).status == "ok"
    up = get_adapter(name, pipe=fake_pipe(), preset="upstream")
    assert up.generate(make_case(2, case_id="p2_up"), SEED).status == "ok"


def test_qwen_paper_checkpoint_is_the_single_image_august_model(make_case, fake_pipe):
    pipe = fake_pipe()
    adapter = get_adapter("qwen-image-edit", pipe=pipe)
    assert adapter.settings["model_id"] == "Qwen/Qwen-Image-Edit"
    assert adapter.pipeline_class_name() == "QwenImageEditPipeline"
    res = adapter.generate(make_case(1, case_id="p1_q"), SEED)
    assert res.status == "ok" and pipe.calls[-1]["num_inference_steps"] == 50
    source = adapter.capabilities.presets["paper"]["model_id"].source
    assert "2508.02324" in source and "Table 2" in source
    assert get_adapter("qwen-image-edit", preset="upstream").settings["model_id"] == "Qwen/Qwen-Image-Edit-2509"


def test_presets_are_settings_with_sources_and_user_settings_win():
    from multiid_bench.errors import ConfigError

    a = get_adapter("flux-kontext", preset="paper", multi_id="stitch")
    assert a.settings["multi_id"] == "stitch" and a.settings["preset"] == "paper"
    with pytest.raises(ConfigError, match="unknown preset 'papr'"):
        get_adapter("flux-kontext", preset="papr")
    for name in ("flux-kontext", "qwen-image-edit", "instantid", "omnigen2", "umo"):
        presets = get_adapter(name).capabilities.presets
        assert set(presets) == {"paper", "upstream"}
        assert all(c.source for p in presets.values() for c in p.values())


# ------------------------------------------------------------------------------------------ worker load failures
BROKEN = textwrap.dedent('''
    import sys
    from _serve import serve

    def load(settings, device):
        if settings["how"] == "raise":
            print("libcudart.so.12: cannot open shared object file", file=sys.stderr)
            raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version")
        if settings["how"] == "die":
            sys.exit(7)
        return {}

    def generate(state, request, seed):
        from PIL import Image
        return Image.new("RGB", (8, 8))

    if __name__ == "__main__":
        serve(load, generate)
''')


@pytest.fixture
def broken_cls(tmp_path):
    script = tmp_path / "broken_worker.py"
    script.write_text(BROKEN)

    class Broken(WorkerAdapter):
        name = "broken"
        worker_script = str(script)
        capabilities = Capabilities(max_ids=4, native_res=(8, 8), licence="test", integration="worker",
                                    defaults={**WORKER_DEFAULTS, "how": "raise"})

        def build_request(self, case, seed):
            return Request(prompt=case.prompt, size=(8, 8), call_kwargs={"ref_imgs": list(case.refs and [])})

    return Broken


@pytest.mark.parametrize("how,expected", [("raise", "CUDA driver version is insufficient"),
                                          ("die", "worker exited with code 7")])
def test_other_load_failures_stop_with_exit_3_and_a_message(broken_cls, make_case, how, expected):
    adapter = broken_cls(how=how, python=sys.executable)
    with pytest.raises(WorkerLoadError) as info:
        adapter.generate(make_case(1, case_id="p1_b"), SEED)
    err = info.value
    assert err.exit_code == EXIT_MISSING == 3 and expected in str(err) and "mbench setup-env broken" in str(err)
    if how == "raise":
        assert "libcudart.so.12" in str(err)  # the log's last lines are in the message, not a traceback


def test_cli_prints_the_load_failure_without_a_traceback(broken_cls, monkeypatch, capsys, make_case):
    import click

    from multiid_bench.cli._errors import run_with_error_mapping

    @click.command()
    def go():
        broken_cls(python=sys.executable).generate(make_case(1, case_id="p1_c"), SEED)

    monkeypatch.delenv("MBENCH_DEBUG", raising=False)
    code = run_with_error_mapping(go, [], debug=False)
    err = capsys.readouterr().err
    assert code == 3 and "failed to load the model" in err and "Traceback" not in err


def test_worker_temp_folder_is_deleted(broken_cls, make_case):
    adapter = broken_cls(how="ok", python=sys.executable)
    res = adapter.generate(make_case(1, case_id="p1_t"), SEED)
    assert res.status == "ok"
    tmp = adapter.pipe._tmp
    assert tmp.is_dir() and [p.name for p in tmp.iterdir()] == ["worker.log"]  # request folder gone already
    adapter.close()
    assert not tmp.exists() and adapter.pipe is None
    # a failed load deletes nothing the user needs: the message has the log; the folder goes with the client
    failing = broken_cls(how="raise", python=sys.executable)
    with pytest.raises(WorkerLoadError):
        failing.load("cpu")
    import gc

    gc.collect()
    leftovers = [p for p in Path(tmp.parent).glob("mbench-broken-*") if p.exists()]
    assert leftovers == []


def test_generate_cli_paper_preset_marks_multi_person_cases_not_applicable(tmp_path):
    """End to end on the demo bench: no weights are loaded when every case is not applicable."""
    import json

    from multiid_bench.cli._errors import run_with_error_mapping
    from multiid_bench.cli.main import cli

    out = tmp_path / "qwen"
    code = run_with_error_mapping(cli, ["generate", "--model", "qwen-image-edit", "--preset", "paper", "--bench", "demo",
                                        "--ref-source", "raw", "--subset", "p2,p3", "--out", str(out)], debug=False)
    rows = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert code == 0 and rows and {r["status"] for r in rows} == {"not_applicable"}
    assert all(r["settings"]["preset"] == "paper" and r["settings"]["model_id"] == "Qwen/Qwen-Image-Edit" for r in rows)
    assert run_with_error_mapping(cli, ["generate", "--model", "dummy", "--preset", "upstream", "--bench", "demo",
                                        "--limit", "1", "--out", str(tmp_path / "d")], debug=False) == 2


# ------------------------------------------------------------------------------------------ UniPortrait / InstantID pins
@pytest.mark.parametrize("name", ["uniportrait", "instantid"])
def test_uniportrait_and_instantid_get_their_own_env_with_a_diffusers_that_imports(name):
    """Both repositories import ``diffusers.pipelines.controlnet.multicontrolnet`` / ``MultiControlNetModel``,
    gone from current diffusers (0.42.1 here): each gets its own lock with diffusers <= 0.39."""
    from multiid_bench.adapters.environments import read_lock, spec_for

    pins = dict(line.split("==") for line in read_lock(spec_for(name)))
    major, minor, *_ = (int(x) for x in pins["diffusers"].split("."))
    assert (major, minor) <= (0, 39) and pins["diffusers"] == "0.30.3"
    assert pins["huggingface-hub"] == "0.25.2"  # diffusers 0.30 needs a hub from before 0.26's removals
    docs = (Path(__file__).resolve().parents[2] / "docs" / "adapters.md").read_text()
    assert "may run in the toolkit's own environment" not in docs
    assert get_adapter(name).environment()[2] in ("the current interpreter", "mbench setup-env record",
                                                   "environment variables")


def test_a_client_can_start_again_after_a_failed_load(broken_cls, make_case):
    adapter = broken_cls(how="raise", python=sys.executable)
    with pytest.raises(WorkerLoadError):
        adapter.load("cpu")
    from multiid_bench.adapters._worker import WorkerClient

    client = WorkerClient(sys.executable, Path(adapter.worker_script), {"how": "raise"}, "cpu", name="again")
    for _ in range(2):  # the second start recreates the folder the first failure removed
        with pytest.raises(WorkerLoadError, match="CUDA driver"):
            client.start()
        assert not client._tmp.exists()


def test_uno_weights_that_cannot_be_fetched_are_missing_weights(monkeypatch, worker_module):
    class UNOPipeline:
        def __init__(self, *a, **k):  # what transformers raises offline for the CLIP tokenizer
            raise OSError("Can't load tokenizer for 'openai/clip-vit-large-patch14'.")

    _fake_modules(monkeypatch, {"uno": {}, "uno.flux": {},
                                "uno.flux.pipeline": {"UNOPipeline": UNOPipeline, "preprocess_ref": None}})
    worker = worker_module("uno_worker")
    with pytest.raises(worker.MissingWeights, match="clip-vit-large-patch14.*FLUX_DEV, AE, T5, CLIP and LORA"):
        worker.load(get_adapter("umo").worker_settings(), "cpu")
