"""Scorer card, cache keys, image coercion, registry, weight lookup, import weight, manifest entries."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from multiid_bench.errors import BadInputError, ConfigError, MissingWeightsError
from multiid_bench.scorers import (
    AestheticScorer,
    ClipScorer,
    FidScorer,
    ScorerCard,
    as_rgb_image,
    get_scorer,
    list_scorers,
    paired_cosine,
)
from multiid_bench.scorers.base import resolve_weight_file

CARD = ScorerCard(
    id="clip", version="1.0.0", metrics=("clip_i", "clip_t"), model="open_clip:ViT-B-16",
    weights=(("clip-vit-b-16-openai/open_clip_model.safetensors", "ab" * 32),), preprocess="p",
    preprocess_version="clip-reference-224-v1", dtype="float32", feature_dim=512,
)


def test_cache_key_holds_everything_that_moves_a_number() -> None:
    key = CARD.cache_key("cd" * 32)
    assert key.endswith("cd" * 32) and key.startswith("clip-")
    assert CARD.cache_key("cd" * 32) == key  # stable
    for change in ({"weights": (("w/f", "ef" * 32),)}, {"preprocess_version": "clip-open_clip-224-v1"},
                   {"dtype": "bfloat16"}, {"version": "1.0.1"}, {"model": "open_clip:ViT-L-14"}):
        assert replace(CARD, **change).cache_key("cd" * 32) != key, change
    # the prose description does not move numbers, so it does not change the key
    assert replace(CARD, preprocess="same thing, reworded").cache_key("cd" * 32) == key


def test_card_dict_and_multi_file_hash() -> None:
    d = CARD.to_dict()
    assert d["weights"] == {"clip-vit-b-16-openai/open_clip_model.safetensors": "ab" * 32}
    assert d["weights_sha256"] == "ab" * 32 and d["metrics"] == ["clip_i", "clip_t"]
    two = replace(CARD, weights=(("a/x", "11" * 32), ("b/y", "22" * 32)))
    swapped = replace(CARD, weights=(("b/y", "22" * 32), ("a/x", "11" * 32)))
    assert two.weights_sha256 == swapped.weights_sha256 and len(two.weights_sha256) == 64
    assert replace(CARD, weights=(("a/x", "11" * 32), ("b/y", "33" * 32))).weights_sha256 != two.weights_sha256


def test_as_rgb_image_accepts_pil_any_mode_and_uint8_arrays() -> None:
    from PIL import Image

    assert as_rgb_image(Image.new("L", (4, 3), 7)).mode == "RGB"
    assert as_rgb_image(Image.new("RGBA", (4, 3), (1, 2, 3, 0))).getpixel((0, 0)) == (1, 2, 3)
    arr = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(3, 4, 3)
    np.testing.assert_array_equal(np.asarray(as_rgb_image(arr)), arr)
    with pytest.raises(BadInputError, match=r"image #2: expected an \(H, W, 3\) uint8"):
        as_rgb_image(arr.astype(np.float32), 2)
    with pytest.raises(BadInputError, match="got str"):
        as_rgb_image("photo.jpg")  # type: ignore[arg-type]


def test_paired_cosine_is_raw_and_row_wise() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    expected = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(paired_cosine(a, b), expected, atol=1e-12)
    assert paired_cosine(a, -a).tolist() == pytest.approx([-1.0] * 5)
    assert paired_cosine(np.zeros((0, 3)), np.zeros((0, 3))).shape == (0,)


def test_registry_by_name_and_by_metric() -> None:
    assert list_scorers() == ["aesthetic", "clip", "fid"]
    assert isinstance(get_scorer("clip_t"), ClipScorer) and isinstance(get_scorer("clip"), ClipScorer)
    assert isinstance(get_scorer("aesthetic", dtype="float32"), AestheticScorer)
    assert isinstance(get_scorer("fid"), FidScorer)
    with pytest.raises(ConfigError, match="Did you mean clip"):
        get_scorer("clipp")


def test_card_needs_resolved_weights_and_batch_size_is_checked() -> None:
    with pytest.raises(RuntimeError, match="resolve_weights"):
        _ = ClipScorer().card
    with pytest.raises(ValueError, match="batch_size"):
        ClipScorer(batch_size=0)


def test_explicit_weight_path_is_hashed_and_missing_one_is_exit_3(tmp_path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc")
    path, sha = resolve_weight_file("x", None, f, cache_dir=tmp_path, offline=True)
    assert path == f and sha == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with pytest.raises(MissingWeightsError) as err:
        resolve_weight_file("x", None, tmp_path / "gone.bin", cache_dir=tmp_path, offline=True)
    assert err.value.exit_code == 3


def test_importing_scorers_imports_no_heavy_library() -> None:
    code = ("import sys, multiid_bench.scorers; "
            "print(sorted(m for m in ('torch', 'torchvision', 'open_clip', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_manifest_entries_and_offline_preflight(tmp_path) -> None:
    from multiid_bench.weights import get_store, load_manifests

    entries = load_manifests()
    ids = set(ClipScorer().weight_ids + AestheticScorer().weight_ids + FidScorer().weight_ids)
    assert ids == {"clip-vit-b-16-openai", "siglip-so400m-patch14-384", "aesthetic-predictor-v2-5",
                   "fid-inception-2015-12-05"}
    for wid in ids:
        assert entries[wid].source.endswith("scorers.toml")
        for f in entries[wid].files:
            assert f.sha256 or f.sha256_note, (wid, f.name)
    head = entries["aesthetic-predictor-v2-5"].file()
    assert head.sha256 == "a6caf256b3dc434273c98dcb12f6bf17c5d4fc647d8df11f038386923dd06220" and head.size == 2644834
    fid = entries["fid-inception-2015-12-05"].file()
    assert fid.name.split("-")[-1].split(".")[0] == fid.sha256[:8]  # torch.hub's hash-prefix convention
    missing = get_store(tmp_path, offline=True).preflight(sorted(ids))
    assert sorted((m.weight_id, m.name) for m in missing) == [
        ("aesthetic-predictor-v2-5", "aesthetic_predictor_v2_5.pth"),
        ("clip-vit-b-16-openai", "open_clip_model.safetensors"),
        ("fid-inception-2015-12-05", "pt_inception-2015-12-05-6726825d.pth"),
        ("siglip-so400m-patch14-384", "config.json"),
        ("siglip-so400m-patch14-384", "model.safetensors"),
    ]
