"""Training the SigLIP branch end to end on a tiny CPU config over synthetic MultiID-2M records.

The SigLIP tower is a tiny random ``SiglipVisionModel`` built from a config, saved with ``save_pretrained`` and
loaded by the trainer through the inference loader (``references.SiglipFaceEncoder.from_pretrained``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest_train import HERE, one_thread, tiny_config, tiny_train_components, write_synthetic_data  # noqa: F401
from safetensors import safe_open
from safetensors.torch import load_file

from multiid_bench.errors import ConfigError
from multiid_bench.reference_model.bank import build_reference_bank
from multiid_bench.reference_model.batches import TrainStream, collate
from multiid_bench.reference_model.data import open_source, write_shard
from multiid_bench.reference_model.references import ReferenceEncoder, SiglipFaceEncoder, square_face_crop
from multiid_bench.reference_model.train import Dist, compute_step, find_checkpoint, train
from multiid_bench.reference_model.train_components import reference_siglip, sample_builder
from multiid_bench.reference_model.train_config import TrainConfig

SIG_FACTORY = "test_train_siglip:tiny_sig_components"
TINY_SIGLIP = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                   patch_size=8)  # 16 patch tokens x 16

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_sig_components(cfg):
    """The trainer tests' tiny components with a SigLIP-branch adapter sized from the saved tower's config."""
    from transformers import SiglipVisionConfig

    from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter

    comp = tiny_train_components(cfg)
    sc = SiglipVisionConfig.from_pretrained(cfg.model.siglip)
    torch.manual_seed(1)
    comp.adapter = WithAnyoneAdapter.from_transformer_config(
        comp.transformer.config, siglip_branch=True, ca_head_dim=8, siglip_dim=sc.hidden_size,
        num_siglip_tokens=(sc.image_size // sc.patch_size) ** 2)
    return comp


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    root = tmp_path_factory.mktemp("sig-data")
    d = write_synthetic_data(root, n_records=4)
    d["bank"] = build_reference_bank(ref_dir=d["refs"]).save(root / "bank.safetensors")
    torch.manual_seed(5)
    SiglipVisionModel(SiglipVisionConfig(**TINY_SIGLIP)).save_pretrained(root / "siglip")
    d["siglip"] = root / "siglip"
    return d


def sig_config(tmp_path: Path, synth, **sections) -> TrainConfig:
    model = {"factory": SIG_FACTORY, "branch": "sig", "siglip": str(synth["siglip"]), **sections.pop("model", {})}
    data = {"siglip_crop_size": 64, **sections.pop("data", {})}
    return tiny_config(tmp_path, synth["shards"], synth["bank"], model=model, data=data, **sections)


def _first_batch(cfg: TrainConfig, bank=None) -> dict:
    stream = TrainStream([open_source(p) for p in cfg.data.paths], None, sample_builder(cfg, bank), seed=cfg.run.seed)
    return collate([stream[p] for p in range(cfg.run.global_batch)])


def _diffusion_loss(cfg: TrainConfig, adapter_path: Path | None) -> float:
    """L_diff of the first global batch (fixed records, noise, t, crops) under a given adapter."""
    from accelerate import Accelerator

    from multiid_bench.reference_model.train_components import TrainModule, build_components

    cfg = cfg.replace(model={"init_adapter": str(adapter_path) if adapter_path else None},
                      loss={"lambda_id": 0.0, "lambda_cl": 0.0, "bank_negatives": 0})
    torch.manual_seed(cfg.run.seed)
    comp = build_components(cfg, Accelerator(cpu=True).device)
    with torch.no_grad():
        out = compute_step(comp, TrainModule(comp.adapter, comp.transformer), _first_batch(cfg), cfg, 0, Dist(1, 0))
    comp.adapter.set_conditioning(None)
    return out.logs["diff"]


def test_siglip_steps_train_the_branch_and_lower_the_diffusion_loss(tmp_path, synth):
    cfg = sig_config(tmp_path, synth, run={"max_steps": 20, "checkpoint_every": 20})
    before = _diffusion_loss(cfg, None)
    result = train(cfg)
    assert result.step == 20 and all({"diff", "id", "cl"} <= set(r) for r in result.history)
    final = load_file(str(result.output_dir / "final" / "adapter.safetensors"))
    init = {k: v for k, v in tiny_sig_components(cfg).adapter.state_dict().items()}
    sig = [k for k in final if k.split(".")[0].endswith("_sig")]
    assert {k.split(".")[0] for k in sig} == {"ipa_sig", "arcface_in_sig", "siglip_in_sig"}
    # Adam moved the SigLIP tokeniser by lr-sized steps (weight decay alone would move it by ~1e-5)
    assert all((final[k] - init[k]).abs().max() > 1e-3 for k in sig if k.startswith("siglip_in_sig"))
    assert all(torch.equal(final[k], init[k]) for k in final if k not in sig)  # ArcFace branch frozen, λ_arc = 0
    after = _diffusion_loss(cfg, result.output_dir / "final" / "adapter.safetensors")
    assert after < 0.96 * before, (before, after)  # measured: 1.679 -> 1.574 (x 0.938)


def test_siglip_resume_continues_bit_exactly(tmp_path, synth):
    straight = train(sig_config(tmp_path / "a", synth, run={"max_steps": 4, "checkpoint_every": 2}))
    cfg = sig_config(tmp_path / "b", synth, run={"max_steps": 4, "checkpoint_every": 2})
    first = train(cfg, stop_after=2)
    ckpt = find_checkpoint(cfg.run.output_dir)
    assert first.step == 2 and ckpt.name == "step-2"
    assert TrainConfig.from_dict(json.loads((ckpt / "state.json").read_text())["config"]) == cfg
    assert any(k.startswith("siglip_in_sig.") for k in load_file(str(ckpt / "adapter.safetensors")))
    second = train(cfg)
    assert second.resumed_from == ckpt and [r["step"] for r in second.history] == [2, 3]
    assert second.history == straight.history[2:]  # same floats
    a = load_file(str(straight.output_dir / "final" / "adapter.safetensors"))
    b = load_file(str(second.output_dir / "final" / "adapter.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# The ArcFace-only trainer before the SigLIP branch existed, same tiny config (3 steps, bank, seed 3):
# metrics.jsonl "diff" of steps 0-2 measured with the previous train.py on this machine.
ARC_BASELINE_DIFF = (1.6595630645751953, 1.6758345365524292, 1.6185693740844727)


def test_arcface_run_never_loads_siglip_and_is_unchanged(tmp_path, synth, monkeypatch):
    from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter

    loads, prepares = [], []
    real_load, real_prepare = SiglipFaceEncoder.from_pretrained.__func__, WithAnyoneAdapter.prepare
    monkeypatch.setattr(SiglipFaceEncoder, "from_pretrained",
                        classmethod(lambda cls, *a, **k: loads.append(a) or real_load(cls, *a, **k)))
    monkeypatch.setattr(WithAnyoneAdapter, "prepare",
                        lambda self, *a, **k: prepares.append(k) or real_prepare(self, *a, **k))
    cfg = tiny_config(tmp_path, synth["shards"], synth["bank"], run={"max_steps": 3, "checkpoint_every": 3},
                      model={"siglip": str(synth["siglip"])})  # a tower is configured but must not be read
    result = train(cfg)
    assert loads == [] and len(prepares) == 3
    assert all("siglip" not in k and "lambda_sig" not in k for k in prepares)  # the call it always was
    assert [r["diff"] for r in result.history] == pytest.approx(ARC_BASELINE_DIFF, rel=1e-5)
    batch = _first_batch(cfg)
    assert not {"ref_crops", "siglip", "ref_valid"} & set(batch)
    assert not any(k.split(".")[0].endswith("_sig") for k in
                   load_file(str(result.output_dir / "final" / "adapter.safetensors")))
    sig_cfg = sig_config(tmp_path / "sig", synth)
    _first_batch(sig_cfg)  # building SigLIP batches does not load the tower either
    assert loads == []


def _inference_features(synth) -> dict[str, np.ndarray]:
    """Per record key: ReferenceEncoder.encode (the pipeline's path) on the decoded record image, one reference
    per face, its detection = that face's box."""

    class Face:
        def __init__(self, box):
            self.box, self.score = box, 1.0

    class OneBox:
        box = None

        def detect(self, arrays):
            return [[Face(self.box)] for _ in arrays]

    class Embed:
        def embed(self, crops):
            return np.zeros((len(crops), 512), np.float32)

    enc = SiglipFaceEncoder.from_pretrained(synth["siglip"])
    det = OneBox()
    ref = ReferenceEncoder(det, Embed(), aligner=lambda arr, faces, kind, size: np.zeros((1, 112, 112, 3)),
                           siglip=enc)
    out = {}
    src = open_source(synth["shards"])
    for i in range(len(src)):
        rec = src.read(i)
        rows = []
        for box in rec.boxes:
            det.box = box
            rows.append(ref.encode([rec.image], with_siglip=True).siglip[0])
        out[rec.key] = np.stack(rows)
    return out


def test_features_given_to_the_adapter_equal_the_inference_path(tmp_path, synth, monkeypatch):
    from accelerate import Accelerator

    from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter
    from multiid_bench.reference_model.train_components import TrainModule, build_components

    cfg = sig_config(tmp_path, synth, data={"siglip_crop_size": 512}, loss={"lambda_id": 0.0, "lambda_cl": 0.0})
    comp = build_components(cfg, Accelerator(cpu=True).device)
    assert isinstance(comp.siglip, SiglipFaceEncoder)
    assert not any(p.requires_grad for p in comp.siglip.model.parameters())
    seen = []
    real_prepare = WithAnyoneAdapter.prepare
    monkeypatch.setattr(WithAnyoneAdapter, "prepare",
                        lambda self, *a, **k: seen.append(k) or real_prepare(self, *a, **k))
    batch = _first_batch(cfg)
    assert batch["ref_crops"].shape[2:] == (512, 512, 3) and batch["ref_crops"].dtype == torch.uint8
    with torch.no_grad():
        compute_step(comp, TrainModule(comp.adapter, comp.transformer), batch, cfg, 0, Dist(1, 0))
    comp.adapter.set_conditioning(None)
    (kw,) = seen
    assert kw["lambda_sig"] == cfg.loss.lambda_sig and kw["lambda_arc"] == 0.0
    given = kw["siglip"]
    assert given.shape == (4, 2, 16, 16)
    expected = _inference_features(synth)
    for b, key in enumerate(batch["key"]):
        n = int(batch["ref_valid"][b].sum())
        torch.testing.assert_close(given[b, :n], torch.from_numpy(expected[key]), rtol=0, atol=1e-6)
        assert torch.count_nonzero(given[b, n:]) == 0  # padded faces
    # records carrying precomputed features (the same encoder's output) give the adapter the same tensor
    recs = [(k, im, meta, {**payload, "siglip": expected[k]}) for k, im, meta, payload in synth["records"]]
    write_shard(tmp_path / "pre" / "train.tar", recs)
    pre = cfg.replace(data={"siglip_features": "precomputed", "paths": (str(tmp_path / "pre"),)})
    pre_batch = _first_batch(pre)
    assert "ref_crops" not in pre_batch and pre_batch["key"] == batch["key"]
    torch.testing.assert_close(reference_siglip(comp, pre_batch), given, rtol=0, atol=1e-6)


def test_paired_siglip_reference_is_the_reference_photo_crop(tmp_path, synth):
    from PIL import Image

    from multiid_bench.reference_model.bank import ReferenceBank

    with pytest.raises(ConfigError, match="ref_dir"):
        sig_config(tmp_path, synth, data={"paired_ratio": 1.0})
    cfg = sig_config(tmp_path, synth, data={"paired_ratio": 1.0, "ref_dir": str(synth["refs"]),
                                            "paired_max_sim": 1.0, "paired_min_sim": 0.0})
    bank = ReferenceBank.load(synth["bank"])
    batch = _first_batch(cfg, bank)
    assert bool(batch["paired"].all())
    photos = {}
    for person in Path(synth["refs"]).iterdir():
        for jpg in person.glob("*.jpg"):
            arr = np.asarray(Image.open(jpg).convert("RGB"))
            photos[(person.name, jpg.stem)] = np.asarray(square_face_crop(arr, [4, 4, 36, 36], 64))
    emb = {(p.parent.name, p.stem): np.load(p, allow_pickle=True).item()["embeddings"][0]
           for p in Path(synth["refs"]).glob("*/*.npy")}
    for b in range(len(batch["key"])):
        for f in range(int(batch["ref_valid"][b].sum())):
            cond = batch["cond_emb"][b, f].numpy()
            (src,) = [k for k, e in emb.items() if np.array_equal(e.astype(np.float32), cond)]
            assert np.array_equal(batch["ref_crops"][b, f].numpy(), photos[src])  # crop of the chosen photo


def test_siglip_config_checks(tmp_path, synth):
    with pytest.raises(ConfigError, match="lambda_sig"):
        sig_config(tmp_path, synth, loss={"lambda_sig": 0.0})
    with pytest.raises(ConfigError, match="precomputed"):
        sig_config(tmp_path, synth, data={"paired_ratio": 0.5, "ref_dir": "x", "siglip_features": "precomputed"})
    with pytest.raises(ConfigError, match="siglip_features"):
        sig_config(tmp_path, synth, data={"siglip_features": "cached"})
    bad = sig_config(tmp_path, synth, model={"factory": "conftest_train:tiny_train_components"})
    with pytest.raises(ConfigError, match="no SigLIP branch"):
        train(bad)


def test_production_loader_sizes_the_branch_from_the_tower(tmp_path, synth):
    """No factory: FLUX from a diffusers folder, the adapter's SigLIP sizes from the saved tower's config, the
    tower through ``SiglipFaceEncoder.from_pretrained``; trains with gradient checkpointing on."""
    from diffusers import FluxPipeline
    from refmodel_tiny import tiny_components
    from safetensors.torch import save_file

    from conftest_train import TINY_ARCFACE
    from multiid_bench.reference_model.arcface_torch import IResNetConfig, build_iresnet

    FluxPipeline(**tiny_components().as_kwargs()).save_pretrained(tmp_path / "flux")
    torch.manual_seed(2)
    save_file(build_iresnet(IResNetConfig(**TINY_ARCFACE)).state_dict(), str(tmp_path / "arc.safetensors"))
    cfg = sig_config(tmp_path, synth, run={"max_steps": 2},
                     model={"factory": None, "factory_path": None, "base_model": str(tmp_path / "flux"),
                            "loss_arcface": str(tmp_path / "arc.safetensors"), "gradient_checkpointing": True},
                     data={"fixed_prompt": None})
    result = train(cfg)
    assert result.step == 2 and all(np.isfinite(r["loss"]) for r in result.history)
    sd = load_file(str(result.output_dir / "final" / "adapter.safetensors"))
    assert sd["siglip_in_sig.0.weight"].shape[1] == TINY_SIGLIP["hidden_size"]
    with safe_open(str(result.output_dir / "final" / "adapter.safetensors"), "pt") as fh:
        meta_cfg = json.loads(fh.metadata()["withanyone_config"])
    assert meta_cfg["num_siglip_tokens"] == 16 and meta_cfg["siglip_branch"] is True
