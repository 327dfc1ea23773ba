"""What ``mb.evaluate`` accepts as a model's output, and diffusers pipelines as models (a tiny random-init one)."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import multiid_bench as mb
from multiid_bench.errors import ConfigError
from multiid_bench.model_calls import pipeline_adapter, to_pil_image

RED = (255, 0, 0)


def _red_hwc() -> np.ndarray:
    a = np.zeros((8, 6, 3), np.uint8)
    a[..., 0] = 255
    return a


@pytest.mark.parametrize("value", [
    Image.fromarray(_red_hwc()),
    _red_hwc(),
    np.moveaxis(_red_hwc(), -1, 0).copy(),                                   # numpy CHW uint8
    np.moveaxis(_red_hwc(), -1, 0).astype(np.float32) / 255,                 # numpy CHW float in [0, 1]
    torch.from_numpy(np.moveaxis(_red_hwc(), -1, 0).copy()).float() / 255,   # torch CHW float
    torch.from_numpy(_red_hwc()),                                            # torch HWC uint8
    (torch.from_numpy(_red_hwc()).permute(2, 0, 1)[None].float() / 255).to(torch.bfloat16),  # a batch of one
    [Image.fromarray(_red_hwc())],                                           # .images-style list of one
    type("Output", (), {"images": [_red_hwc()]})(),                          # a diffusers output
], ids=["pil", "np-hwc", "np-chw", "np-chw-float", "torch-chw-float", "torch-hwc-uint8", "torch-batch-bf16",
        "list-of-one", "dot-images"])
def test_every_documented_return_type_becomes_the_same_rgb_image(value) -> None:
    image = to_pil_image(value, "fn", "c0")
    assert image.mode == "RGB" and image.size == (6, 8) and image.getpixel((3, 4)) == RED


@pytest.mark.parametrize(("value", "message"), [
    ((1, 2), "fn returned tuple for case c0; return a PIL.Image"),
    (np.zeros((8, 6, 3), np.float32) - 1, r"float pixels in \[-1, -1\] .* \(x \+ 1\) / 2"),
    ([Image.new("RGB", (4, 4))] * 2, "returned 2 images for case c0; return exactly one"),
    (np.zeros((8, 6, 5), np.uint8), "no axis of 1, 3 or 4 channels"),
    (torch.zeros(2, 3, 4, 4), r"shape \(2, 3, 4, 4\)"),
])
def test_anything_else_stops_with_what_to_return(value, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        to_pil_image(value, "fn", "c0")


@pytest.mark.slow
def test_a_function_returning_a_tensor_is_scored(tmp_path: Path) -> None:
    def as_tensor(case):  # CHW float in [0, 1], the way most torch code holds an image
        return torch.from_numpy(np.asarray(case.references[0].resize((64, 64)))).permute(2, 0, 1).float() / 255

    run = mb.evaluate(as_tensor, bench="demo", profile="offline", out=tmp_path / "run", limit=1, device="cpu",
                      cache_dir=str(tmp_path / "cache"), progress=False, scorers=False)
    assert run.summary["counts"]["ok"] == 1 and Image.open(next((tmp_path / "run" / "images").iterdir())).size == (64, 64)


@pytest.mark.slow
def test_a_diffusers_pipeline_is_called_with_the_documented_convention_and_recorded(tmp_path: Path) -> None:
    import tiny_pipelines

    pipe = tiny_pipelines.img2img()
    calls = []
    original = type(pipe).__call__

    @functools.wraps(original)
    def spy(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    type(pipe).__call__ = spy
    try:
        run = mb.evaluate(pipe, bench="demo", profile="offline", out=tmp_path / "run", limit=2, device="cpu",
                          cache_dir=str(tmp_path / "cache"), progress=False, scorers=False,
                          settings={"num_inference_steps": 2, "strength": 0.5})
    finally:
        type(pipe).__call__ = original
    # a random-init pipeline draws no face: both generations succeed, and scoring says there is no face to score
    assert run.summary["counts"]["expected"] == 2 and run.summary["model"] == "StableDiffusionImg2ImgPipeline"
    generations = [json.loads(line) for line in (tmp_path / "run" / "generations.jsonl").read_text().splitlines()]
    assert [g["status"] for g in generations] == ["ok", "ok"] and len(calls) == 2
    first = calls[0]
    assert first["prompt"] and isinstance(first["image"], Image.Image) and "height" not in first
    assert first["num_inference_steps"] == 2 and first["generator"].initial_seed() != calls[1]["generator"].initial_seed()
    source = json.loads((tmp_path / "run" / "run.json").read_text())["source"]
    assert source["pipeline"]["class"].endswith("StableDiffusionImg2ImgPipeline")
    assert source["pipeline"]["config"]["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert "name_or_path" in source["pipeline"]
    record = generations[0]
    assert record["requested_size"] == record["output_size"] == list(first["image"].size) and record["extra"]["reference_argument"] == "image"
    assert record["seed"] == first["generator"].initial_seed()


def test_a_pipeline_without_image_input_is_refused_naming_the_wrapper() -> None:
    import tiny_pipelines

    pipe = tiny_pipelines.text2img()
    with pytest.raises(ConfigError, match=r"StableDiffusionPipeline takes no reference image.*no IP-Adapter is "
                                          r"loaded.*def generate\(case\)"):
        mb.evaluate(pipe, bench="demo", out="unused", progress=False)
    with pytest.raises(ConfigError, match=r"\['steps'\] are not parameters of StableDiffusionImg2ImgPipeline"):
        pipeline_adapter(tiny_pipelines.img2img(), settings={"steps": 2})
    with pytest.raises(ConfigError, match=r"\['height'\] are not parameters"):  # img2img: the size of image=
        pipeline_adapter(tiny_pipelines.img2img(), settings={"height": 64})
