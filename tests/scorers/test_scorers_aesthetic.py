"""Aesthetic v2.5: preprocessing parity, equality with the PyPI package's model, dtype, batching, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scorers_tiny import TINY_SIGLIP_VISION

from multiid_bench.errors import ConfigError, MissingWeightsError
from multiid_bench.scorers.aesthetic import AestheticScorer, siglip_pixels


def test_siglip_pixels_equal_siglip_processor_pil(images) -> None:
    pil_mod = pytest.importorskip("transformers.models.siglip.image_processing_pil_siglip")
    proc = pil_mod.SiglipImageProcessorPil(size={"height": 384, "width": 384})  # the checkpoint's settings
    for im in images[:4]:
        ours = siglip_pixels(im, 384).numpy()
        ref = proc(im, return_tensors="np")["pixel_values"][0]
        assert ours.shape == ref.shape == (3, 384, 384)
        assert np.abs(ours - ref).max() <= 1e-6
        assert ours.min() >= -1.0 and ours.max() <= 1.0


def test_scores_equal_the_pypi_package_model(aesthetic_fp32, tiny_siglip, images, monkeypatch) -> None:
    """Oracle: aesthetic_predictor_v2_5's own model, loaded offline from the same local files."""
    pkg = pytest.importorskip("aesthetic_predictor_v2_5")
    import torch

    folder, head = tiny_siglip
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, _ = pkg.convert_v2_5_from_siglip(str(head), encoder_model_name=str(folder))
    pixels = torch.stack([siglip_pixels(im, TINY_SIGLIP_VISION["image_size"]) for im in images])
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits.squeeze(-1).double().numpy()
    np.testing.assert_allclose(aesthetic_fp32.score_images(images), expected, atol=1e-5)


def test_features_unit_norm_and_scores_from_cached_features(aesthetic_fp32, images) -> None:
    feats = aesthetic_fp32.encode_images(images)
    assert feats.shape == (8, TINY_SIGLIP_VISION["hidden_size"]) and feats.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    cached = feats.copy()  # what a feature cache would hand back
    np.testing.assert_array_equal(aesthetic_fp32.score_features(cached), aesthetic_fp32.score_images(images))
    with pytest.raises(ValueError, match=r"shape \(N, 32\)"):
        aesthetic_fp32.score_features(np.zeros((2, 5)))


def test_batch_size_invariance(aesthetic_fp32, images) -> None:
    aesthetic_fp32.batch_size = 8
    f8, s8 = aesthetic_fp32.encode_images(images), aesthetic_fp32.score_images(images)
    aesthetic_fp32.batch_size = 1
    try:
        f1, s1 = aesthetic_fp32.encode_images(images), aesthetic_fp32.score_images(images)
    finally:
        aesthetic_fp32.batch_size = 8
    assert np.abs(f1 - f8).max() <= 1e-5
    assert np.abs(s1 - s8).max() <= 1e-5


def test_bfloat16_is_the_default_and_close_to_fp32(tiny_siglip, aesthetic_fp32, images) -> None:
    folder, head = tiny_siglip
    bf = AestheticScorer(siglip_dir=folder, head=head)
    assert bf.dtype == "bfloat16"
    bf.load("cpu")
    assert bf.card.dtype == "bfloat16" and bf._head.scoring_head[0].weight.dtype.is_floating_point
    assert str(next(bf._vision.parameters()).dtype) == "torch.bfloat16"
    got, ref = bf.score_images(images), aesthetic_fp32.score_images(images)
    assert np.abs(got - ref).max() < 0.02 and not np.array_equal(got, ref)
    assert bf.card.cache_key("ab" * 32) != aesthetic_fp32.card.cache_key("ab" * 32)


def test_card_lists_every_file(aesthetic_fp32, tiny_siglip) -> None:
    import hashlib

    folder, head = tiny_siglip
    card = aesthetic_fp32.card
    names = dict(card.weights)
    assert set(names) == {"siglip-so400m-patch14-384/config.json", "siglip-so400m-patch14-384/model.safetensors",
                          "aesthetic-predictor-v2-5/aesthetic_predictor_v2_5.pth"}
    assert names["aesthetic-predictor-v2-5/aesthetic_predictor_v2_5.pth"] == hashlib.sha256(head.read_bytes()).hexdigest()
    assert card.feature_dim == 32 and card.preprocess_version == "siglip-pil-28-v1"
    assert card.to_dict()["weights_sha256"] == card.weights_sha256 and len(card.weights_sha256) == 64


def test_vision_only_checkpoint_gives_the_same_features(tmp_path: Path, tiny_siglip, aesthetic_fp32, images) -> None:
    from transformers import SiglipModel, SiglipVisionModel

    folder, head = tiny_siglip
    full = SiglipModel.from_pretrained(str(folder), local_files_only=True)
    vision = SiglipVisionModel(full.config.vision_config)
    prefix = "vision_model."
    vision_state = {k[len(prefix):]: v for k, v in full.state_dict().items() if k.startswith(prefix)}
    target = vision.vision_model if hasattr(vision, "vision_model") else vision  # transformers 4 vs 5 layout
    target.load_state_dict(vision_state, strict=True)
    vision.save_pretrained(tmp_path / "vision_only")
    s = AestheticScorer(siglip_dir=tmp_path / "vision_only", head=head, dtype="float32")
    s.load("cpu")
    np.testing.assert_allclose(s.encode_images(images[:3]), aesthetic_fp32.encode_images(images[:3]), atol=1e-6)


def test_checkpoint_missing_a_vision_weight_is_refused(tmp_path: Path, tiny_siglip) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    folder, head = tiny_siglip
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(folder / "config.json", broken / "config.json")
    state = load_file(str(folder / "model.safetensors"))
    dropped = next(k for k in state if k.startswith("vision_model.encoder.layers.1."))
    del state[dropped]
    save_file(state, str(broken / "model.safetensors"))
    with pytest.raises(ConfigError, match="lacks 1 SigLIP vision weight"):
        AestheticScorer(siglip_dir=broken, head=head, dtype="float32").load("cpu")


def test_head_file_must_be_the_v2_5_head(tmp_path: Path, tiny_siglip) -> None:
    import torch

    from multiid_bench.scorers._aesthetic_model import AestheticHead, load_head

    folder, _ = tiny_siglip
    wrong_keys = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(1, 32)}, wrong_keys)
    with pytest.raises(ConfigError, match="not an aesthetic v2.5 head"):
        load_head(wrong_keys, 32)
    wrong_width = tmp_path / "wide.pth"
    torch.save(AestheticHead(64).state_dict(), wrong_width)
    with pytest.raises(ConfigError, match="does not fit a head on 32-d"):
        AestheticScorer(siglip_dir=folder, head=wrong_width, dtype="float32").load("cpu")
    head = AestheticHead(1152)
    assert [m.out_features for m in head.scoring_head if isinstance(m, torch.nn.Linear)] == [1024, 128, 64, 16, 1]
    assert sorted(head.state_dict())[:2] == ["scoring_head.0.bias", "scoring_head.0.weight"]


def test_missing_weights_offline(tmp_path: Path) -> None:
    s = AestheticScorer(cache_dir=tmp_path, offline=True)
    assert s.weight_ids == ("siglip-so400m-patch14-384", "aesthetic-predictor-v2-5")
    with pytest.raises(MissingWeightsError, match="^3 model weight files missing for scorer aesthetic") as err:
        s.resolve_weights()
    for name in ("config.json", "model.safetensors", "aesthetic_predictor_v2_5.pth"):
        assert name in str(err.value)
    assert "mbench weights download siglip-so400m-patch14-384 aesthetic-predictor-v2-5" in str(err.value)
    with pytest.raises(ConfigError, match="dtype must be one of"):
        AestheticScorer(dtype="int8")  # type: ignore[arg-type]
