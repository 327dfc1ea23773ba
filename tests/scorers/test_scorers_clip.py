"""CLIP-I / CLIP-T: scale, hand-computed features, batch invariance, preprocessing parity, weights errors."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from multiid_bench.errors import ConfigError, MissingWeightsError
from multiid_bench.scorers.clip import (
    CLIP_CONTEXT_LENGTH,
    ClipScorer,
    clip_i_scores,
    clip_reference_pixels,
    clip_t_scores,
)

from scorers_tiny import TINY_CLIP

PROMPTS = [
    "a photo of two people smiling at the camera",
    "three friends on a beach at sunset, film grain",
    "portrait of a woman in a red coat",
    "a man and a woman",
    "two children playing in the snow",
    "a studio headshot, soft light",
    "a crowded street in the rain",
    "an old couple on a bench",
]

# (w, h): the resized long side minus 224 is 3 mod 4 for 227 and 231 (torchvision rounds the crop
# offset half-to-even, CLIPProcessor floors it), 1 or 5 mod 4 for the others.
_SIZES = [(227, 224), (224, 227), (231, 224), (229, 224), (225, 224), (300, 227), (512, 512), (640, 481), (181, 97)]


def _rand_image(w: int, h: int, seed: int):
    from PIL import Image

    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_reference_preprocess_equals_clipprocessor_pil() -> None:
    pil_mod = pytest.importorskip("transformers.models.clip.image_processing_pil_clip")
    proc = pil_mod.CLIPImageProcessorPil(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224})
    for i, (w, h) in enumerate(_SIZES):
        im = _rand_image(w, h, i)
        ours = clip_reference_pixels(im).numpy()
        ref = proc(im, return_tensors="np")["pixel_values"][0]
        assert ours.shape == ref.shape == (3, 224, 224)
        assert np.abs(ours - ref).max() <= 1e-6, (w, h)


def test_open_clip_transform_differs_only_by_crop_rounding() -> None:
    """docs/scorers.md: open_clip's transform == CLIPProcessor except a 1-px crop shift when (long - 224) % 4 == 3."""
    from open_clip.transform import image_transform

    oc = image_transform(224, is_train=False, mean=(0.48145466, 0.4578275, 0.40821073),
                         std=(0.26862954, 0.26130258, 0.27577711), interpolation="bicubic", resize_mode="shortest")
    for i, (w, h) in enumerate(_SIZES):
        im = _rand_image(w, h, i)
        diff = np.abs(oc(im).numpy() - clip_reference_pixels(im).numpy()).max()
        long_side = int(224 * max(w, h) / min(w, h))
        if (long_side - 224) % 4 == 3:
            assert diff > 0.1, (w, h)
        else:
            assert diff == 0.0, (w, h)


def test_image_against_itself_is_one(clip_scorer, images) -> None:
    feats = clip_scorer.encode_images(images)
    assert feats.shape == (8, 16) and feats.dtype == np.float32
    again = clip_scorer.encode_images(images[::-1])[::-1]
    np.testing.assert_allclose(clip_i_scores(feats, feats), 1.0, atol=1e-5)
    np.testing.assert_allclose(clip_i_scores(feats, again), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)


def test_clip_t_equals_hand_computed_cosine(clip_scorer, images) -> None:
    import open_clip
    import torch

    model = clip_scorer._model
    tokens = open_clip.get_tokenizer(TINY_CLIP)(PROMPTS)
    pixels = torch.stack([clip_reference_pixels(im, 32) for im in images])
    with torch.no_grad():
        img = model.visual(pixels).numpy().astype(np.float64)           # projected image features
        txt = model.encode_text(tokens).numpy().astype(np.float64)      # projected text features
    img /= np.sqrt((img**2).sum(1, keepdims=True))
    txt /= np.sqrt((txt**2).sum(1, keepdims=True))
    by_hand = (img * txt).sum(1)
    got = clip_t_scores(clip_scorer.encode_images(images), clip_scorer.encode_texts(PROMPTS))
    np.testing.assert_allclose(got, by_hand, atol=1e-6)
    assert np.all(np.abs(got) < 1.0)  # a raw cosine, not x100


def test_batch_size_invariance(clip_scorer, images) -> None:
    clip_scorer.batch_size = 8
    img8, txt8 = clip_scorer.encode_images(images), clip_scorer.encode_texts(PROMPTS)
    clip_scorer.batch_size = 1
    try:
        img1, txt1 = clip_scorer.encode_images(images), clip_scorer.encode_texts(PROMPTS)
    finally:
        clip_scorer.batch_size = 8
    assert np.abs(img1 - img8).max() <= 1e-5
    assert np.abs(txt1 - txt8).max() <= 1e-5


def test_long_prompt_truncated_to_77_tokens(clip_scorer) -> None:
    long_prompt = "a very detailed photo of " + "people " * 120
    tokens = clip_scorer.tokenize([long_prompt, "two people"])
    assert tuple(tokens.shape) == (2, CLIP_CONTEXT_LENGTH)
    sot, eot = 49406, 49407
    assert tokens[0, 0] == sot and tokens[0, -1] == eot and (tokens[0] != 0).all()
    short = tokens[1].tolist()
    assert short[0] == sot and short[short.index(eot) + 1 :] == [0] * (CLIP_CONTEXT_LENGTH - short.index(eot) - 1)
    # everything past token 76 is ignored: two prompts sharing their first 75 word pieces score the same
    same = clip_scorer.encode_texts([long_prompt, long_prompt + " and a dog in a hat"])
    np.testing.assert_allclose(same[0], same[1], atol=1e-6)


def test_scores_are_raw_cosines_not_clamped() -> None:
    a = np.array([[1.0, 0.0], [0.6, 0.8], [1.0, 0.0]])
    b = np.array([[-2.0, 0.0], [0.6, 0.8], [0.0, 3.0]])
    np.testing.assert_allclose(clip_t_scores(a, b), [-1.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(clip_i_scores(a, b), [-1.0, 1.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        clip_i_scores(a, b[:2])


def test_card_records_model_weights_and_preprocessing(clip_scorer, tiny_clip_checkpoint) -> None:
    card = clip_scorer.card
    assert card.metrics == ("clip_i", "clip_t") and card.dtype == "float32" and card.feature_dim == 16
    assert TINY_CLIP in card.model and "quick_gelu=True" in card.model
    assert card.weights_sha256 == hashlib.sha256(tiny_clip_checkpoint.read_bytes()).hexdigest()
    assert card.preprocess_version == "clip-reference-32-v1"
    assert [c.id for c in card.metric_cards()] == ["clip_i", "clip_t"]


def test_quick_gelu_flag_changes_features(tiny_clip_checkpoint, images, clip_scorer) -> None:
    other = ClipScorer(TINY_CLIP, "random-test", checkpoint=tiny_clip_checkpoint, quick_gelu=False)
    other.load("cpu")
    assert np.abs(other.encode_images(images[:2]) - clip_scorer.encode_images(images[:2])).max() > 1e-4
    assert other.card.cache_key("ab" * 32) != clip_scorer.card.cache_key("ab" * 32)


def test_open_clip_preprocess_mode_loads(tiny_clip_checkpoint, images) -> None:
    s = ClipScorer(TINY_CLIP, "random-test", checkpoint=tiny_clip_checkpoint, quick_gelu=True, preprocess="open_clip")
    s.load("cpu")
    assert s.encode_images(images[:2]).shape == (2, 16)
    assert s.card.preprocess_version == "clip-open_clip-32-v1"


def test_mismatched_checkpoint_is_a_config_error(tmp_path, tiny_clip_checkpoint) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_clip_checkpoint))
    state["text_projection"] = state["text_projection"][:, :8].contiguous()
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad))
    with pytest.raises(ConfigError, match="does not fit open_clip model"):
        ClipScorer(TINY_CLIP, "x", checkpoint=bad).load("cpu")


def test_missing_weights_offline_names_the_fix(tmp_path) -> None:
    s = ClipScorer(cache_dir=tmp_path, offline=True)
    assert s.weight_ids == ("clip-vit-b-16-openai",)
    with pytest.raises(MissingWeightsError, match="mbench weights download clip-vit-b-16-openai") as err:
        s.load("cpu")
    assert err.value.exit_code == 3
    with pytest.raises(MissingWeightsError, match="does not exist"):
        ClipScorer(TINY_CLIP, "x", checkpoint=tmp_path / "nope.safetensors").resolve_weights()


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="no weights-store entry"):
        ClipScorer("ViT-L-14", "openai")
    with pytest.raises(ConfigError, match="preprocess must be one of"):
        ClipScorer(preprocess="squash")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="load"):
        ClipScorer().encode_images([])


def test_bfloat16_option_is_close_to_fp32_and_keyed_apart(tiny_clip_checkpoint, clip_scorer, images) -> None:
    bf = ClipScorer(TINY_CLIP, "random-test", checkpoint=tiny_clip_checkpoint, quick_gelu=True, batch_size=8,
                    dtype="bfloat16")
    bf.load("cpu")
    assert clip_scorer.dtype == "float32" and clip_scorer.card.dtype == "float32"  # the default = the reference
    assert bf.card.dtype == "bfloat16" and str(next(bf._model.parameters()).dtype) == "torch.bfloat16"
    g32, g16 = clip_scorer.encode_images(images), bf.encode_images(images)
    t32, t16 = clip_scorer.encode_texts(PROMPTS[: len(images)]), bf.encode_texts(PROMPTS[: len(images)])
    assert g16.dtype == np.float32 and np.allclose(np.linalg.norm(g16, axis=1), 1.0, atol=1e-5)
    d_i = np.abs(clip_i_scores(g16[1:], g16[:-1]) - clip_i_scores(g32[1:], g32[:-1])).max()
    d_t = np.abs(clip_t_scores(g16, t16) - clip_t_scores(g32, t32)).max()
    assert 0 < d_i < 0.05 and 0 < d_t < 0.05  # bf16 rounding moves the cosines, a little
    assert bf.card.cache_key("ab" * 32) != clip_scorer.card.cache_key("ab" * 32)
    with pytest.raises(ConfigError, match="dtype"):
        ClipScorer(TINY_CLIP, "random-test", checkpoint=tiny_clip_checkpoint, dtype="int8")  # type: ignore[arg-type]
