"""Background matting before SigLIP: a stand-in ONNX network (1 conv, exported here) loaded through the weights
store's ``birefnet-general-onnx`` id, as the real BiRefNet file would be."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from multiid_bench.reference_model.matting import MATTING_WEIGHT_ID, MattedSiglipEncoder, load_matting

S = 32


@pytest.fixture
def matting(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = torch.nn.Conv2d(3, 1, 3, padding=1).eval()
    path = tmp_path / "standin.onnx"
    torch.onnx.export(net, torch.randn(1, 3, S, S), str(path), dynamo=False, opset_version=17,
                      input_names=["input_image"], output_names=["mask"])
    monkeypatch.setenv("MBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MBENCH_OFFLINE", "1")
    monkeypatch.setenv("MBENCH_WEIGHTS_" + MATTING_WEIGHT_ID.upper().replace("-", "_"), str(path))
    return load_matting(input_size=S), net


def _crop():
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))


def test_mask_and_composite_follow_the_released_recipe(matting):
    mat, net = matting
    crop = _crop()
    arr = np.asarray(crop.resize((S, S), Image.Resampling.LANCZOS), np.float64)
    arr = arr / arr.max()
    x = (arr - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    with torch.no_grad():
        logit = net.double()(torch.from_numpy(x.transpose(2, 0, 1))[None]).numpy()[0, 0]
    small = Image.fromarray((255 / (1 + np.exp(-logit))).astype(np.uint8), "L")
    want_mask = np.asarray(small.resize(crop.size, Image.Resampling.BILINEAR), np.float32) / 255
    got_mask = mat.masks([crop])[0]
    assert got_mask.shape == (40, 48) and np.abs(got_mask - want_mask).max() <= 1 / 255 + 1e-6
    assert 0.05 < got_mask.std()  # the stand-in's mask is not constant
    out = np.asarray(mat([crop])[0], np.float32)
    expected = np.asarray(crop, np.float32) * want_mask[..., None]  # pasted onto black through the mask
    assert np.abs(out - expected).max() <= 2.0


def test_matted_encoder_feeds_matted_crops_to_siglip(matting):
    mat, _ = matting
    seen = []

    class Encoder:
        model, image_size = object(), 16

        def __call__(self, crops):
            seen.extend(np.asarray(c) for c in crops)
            return np.zeros((len(crops), 4, 12), np.float32)

    enc = MattedSiglipEncoder(Encoder(), mat)
    assert enc([_crop()]).shape == (1, 4, 12) and enc.image_size == 16
    np.testing.assert_array_equal(seen[0], np.asarray(mat([_crop()])[0]))
