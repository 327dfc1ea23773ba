"""WithAnyonePipeline and the Kontext variant on tiny random components (CPU, a few steps)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image
from refmodel_tiny import tiny_adapter, tiny_components

from multiid_bench.errors import BadInputError, ConfigError
from multiid_bench.reference_model.kontext import WithAnyoneKontextPipeline, blur_faces
from multiid_bench.reference_model.layouts import resize_bbox
from multiid_bench.reference_model.pipeline import WithAnyonePipeline
from multiid_bench.reference_model.references import ReferenceEncoder
from multiid_bench.reference_model.sampling import flux_mu, schedule_mu

BOXES = [[0.0, 0.0, 32.0, 32.0], [40.0, 16.0, 96.0, 64.0]]
RUN = dict(height=64, width=96, num_inference_steps=2, max_sequence_length=16, output_type="np")


@dataclass(frozen=True)
class FakeFace:
    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple = ()


class FakeDetector:
    """A flat (constant) image has no face; otherwise one face per entry of ``boxes`` (default: the centre)."""

    id = "fake-detector"

    def __init__(self, boxes=None):
        self.boxes = boxes

    def detect(self, images):
        out = []
        for img in images:
            if img.std() == 0:
                out.append([])
                continue
            h, w = img.shape[:2]
            boxes = self.boxes or [(w * 0.25, h * 0.25, w * 0.75, h * 0.75)]
            out.append([FakeFace(tuple(map(float, b)), 0.9 - 0.1 * i) for i, b in enumerate(boxes)])
        return out


class FakeFaceModel:
    """Raw-scale 512-d embedding from the crop's mean colour through a fixed random projection."""

    id = "fake-arcface"

    def __init__(self):
        self.proj = np.random.default_rng(0).normal(size=(3, 512)).astype(np.float32)

    def embed(self, crops):
        return (crops.reshape(len(crops), -1, 3).mean(1) / 255.0) @ self.proj * 20.0


def fake_align(image, faces, template, size):
    crops = []
    for f in faces:
        x1, y1, x2, y2 = (int(v) for v in f.box)
        crops.append(np.asarray(Image.fromarray(image[y1:y2, x1:x2]).resize((size, size))))
    return np.stack(crops)


def encoder(boxes=None):
    return ReferenceEncoder(FakeDetector(boxes), FakeFaceModel(), aligner=fake_align)


def make_pipe(cls=WithAnyonePipeline, **kw):
    c = tiny_components()
    return cls(**c.as_kwargs(), adapter=tiny_adapter(c.transformer), **kw)


def colour_photo(rgb, size=(80, 80), seed=0):
    noise = np.random.default_rng(seed).integers(0, 30, size=(size[1], size[0], 3))
    return (np.asarray(rgb, dtype=np.int64)[None, None] + noise).clip(0, 255).astype(np.uint8)


@pytest.fixture
def pipe():
    return make_pipe(reference_encoder=encoder())


def count_transformer_calls(pipe):
    calls = []
    pipe.transformer.register_forward_pre_hook(lambda m, a: calls.append(1))
    return calls


def test_returns_requested_size_and_same_seed_gives_same_image(pipe, arcface):
    a = pipe("two people in a park", arcface_embeddings=arcface, boxes=BOXES, seed=5, **RUN)
    b = pipe("two people in a park", arcface_embeddings=arcface, boxes=BOXES, seed=5, **RUN)
    c = pipe("two people in a park", arcface_embeddings=arcface, boxes=BOXES, seed=6, **RUN)
    assert a.images.shape == (1, 64, 96, 3)
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    pil = pipe("two people", arcface_embeddings=arcface, boxes=BOXES, seed=5, **{**RUN, "output_type": "pil"})
    assert pil.images[0].size == (96, 64) and pil.box_source == "given" and pil.lambdas == (1.0, 0.0)


def test_lambda_zero_pipeline_equals_stock_flux_pipeline(arcface):
    from diffusers import FluxPipeline

    stock = FluxPipeline(**tiny_components().as_kwargs())
    ref = stock("a man smiling", height=64, width=96, num_inference_steps=2, guidance_scale=4.0,
                generator=torch.Generator().manual_seed(3), max_sequence_length=16, output_type="np").images
    ours = make_pipe()
    out = ours("a man smiling", arcface_embeddings=arcface, boxes=BOXES, lambda_arc=0.0, schedule="diffusers",
               seed=3, guidance_scale=4.0, **RUN)
    assert np.array_equal(out.images, ref)
    live = ours("a man smiling", arcface_embeddings=arcface, boxes=BOXES, schedule="diffusers", seed=3, **RUN)
    assert not np.array_equal(live.images, ref)


def test_official_schedule_quirk_values_and_sigmas(pipe, arcface):
    assert math.isclose(schedule_mu("official", 512, 512), 0.4594, abs_tol=1e-4)
    assert math.isclose(schedule_mu("official", 1024, 1024), 0.4675, abs_tol=1e-4)
    assert math.isclose(schedule_mu("diffusers", 512, 512), 0.63, abs_tol=1e-4)
    out = pipe("two people", arcface_embeddings=arcface, boxes=BOXES, seed=1, **{**RUN, "num_inference_steps": 4})
    mu = flux_mu((96 // 8) * (64 // 8) // 256)  # the released integer division: 0 here
    assert math.isclose(out.mu, mu, rel_tol=1e-12)
    t = np.linspace(1.0, 0.25, 4)
    expected = np.exp(mu) / (np.exp(mu) + 1.0 / t - 1.0)
    np.testing.assert_allclose(pipe.scheduler.sigmas[:4].numpy(), expected, rtol=1e-6)
    assert float(pipe.scheduler.sigmas[-1]) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"boxes": BOXES + [[0, 0, 16, 16]]}, "3 boxes for 2 references"),
        ({"boxes": BOXES[:1]}, "1 boxes for 2 references"),
        ({"boxes": [[0, 0, 32, 32], [40, 16, 100, 64]]}, "outside the 96x64 output image"),
        ({"boxes": [[10, 10, 5, 20], [40, 16, 96, 64]]}, "is empty"),
        ({"boxes": BOXES, "height": 72}, "height=72 must be a positive multiple of 16"),
        ({"boxes": BOXES, "width": 100}, "width=100 must be a positive multiple of 16"),
    ],
)
def test_bad_input_raises_before_any_denoising_step(pipe, arcface, kwargs, message):
    calls = count_transformer_calls(pipe)
    with pytest.raises(BadInputError, match=message):
        pipe("two people", arcface_embeddings=arcface, seed=0, **{**RUN, **kwargs})
    assert calls == []


def test_reference_without_face_raises_before_any_denoising_step(pipe):
    calls = count_transformer_calls(pipe)
    refs = [colour_photo((200, 40, 40)), np.full((80, 80, 3), 128, np.uint8)]
    with pytest.raises(BadInputError, match="reference 1: no face detected by fake-detector"):
        pipe("two people", reference_images=refs, boxes=BOXES, seed=0, **RUN)
    assert calls == []


def test_identity_source_must_be_exactly_one(pipe, arcface):
    with pytest.raises(BadInputError, match="exactly one of reference_images"):
        pipe("two people", boxes=BOXES, **RUN)
    with pytest.raises(ConfigError, match="lambda_arc=-1"):
        pipe("two people", arcface_embeddings=arcface, boxes=BOXES, lambda_arc=-1, **RUN)
    with pytest.raises(ConfigError, match="reference_encoder"):
        make_pipe()("two people", reference_images=[colour_photo((1, 2, 3))], boxes=BOXES[:1], **RUN)


def test_reference_photos_are_embedded_and_default_layout_is_used(pipe):
    refs = [colour_photo((220, 30, 30), seed=1), colour_photo((30, 30, 220), seed=2)]
    out = pipe("two people", reference_images=refs, seed=2, **RUN)
    assert out.box_source == "default" and len(out.boxes) == 2
    assert all(0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 64 for x1, y1, x2, y2 in out.boxes)
    swapped = pipe("two people", reference_images=refs[::-1], seed=2, **RUN)
    assert not np.array_equal(out.images, swapped.images)  # identity i follows box i


def test_boxes_from_a_layout_photo(arcface):
    photo_boxes = [(60.0, 100.0, 160.0, 220.0), (300.0, 120.0, 420.0, 260.0)]
    pipe = make_pipe(reference_encoder=encoder(photo_boxes))
    photo = colour_photo((90, 120, 60), size=(512, 512))
    out = pipe("two people", arcface_embeddings=arcface, layout_image=photo, seed=0, **RUN)
    assert out.box_source == "layout_photo"
    expected = [resize_bbox(b, 96, 64) for b in photo_boxes]  # 512² photo: square crop = whole photo
    np.testing.assert_allclose(np.asarray(out.boxes), np.asarray(expected), rtol=1e-9)


def test_blur_faces_touches_only_large_boxes():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 240, 3), dtype=np.uint8))
    big, small = (20, 30, 140, 170), (180, 10, 230, 60)
    out = np.asarray(blur_faces(img, [big, small]))
    src = np.asarray(img)
    mask = np.zeros(src.shape[:2], bool)
    mask[30:170, 20:140] = True
    assert np.array_equal(out[~mask], src[~mask])
    assert np.abs(out[mask].astype(int) - src[mask]).mean() > 20


def test_kontext_lambda_zero_equals_stock_kontext_and_output_size(arcface):
    from diffusers import FluxKontextPipeline

    base = colour_photo((100, 150, 200), size=(100, 70), seed=4)  # floors to 96 x 64
    boxes = [[0.0, 0.0, 40.0, 35.0], [50.0, 20.0, 100.0, 70.0]]
    pipe = make_pipe(WithAnyoneKontextPipeline)
    kw = dict(num_inference_steps=2, max_sequence_length=16, output_type="np")
    out = pipe(base, "a photo", arcface_embeddings=arcface, boxes=boxes, seed=3, min_blur_size=10, **kw)
    again = pipe(base, "a photo", arcface_embeddings=arcface, boxes=boxes, seed=3, min_blur_size=10, **kw)
    assert out.images.shape == (1, 64, 96, 3) and np.array_equal(out.images, again.images)
    np.testing.assert_allclose(out.boxes[1], [50 * 0.96, 20 * 64 / 70, 96.0, 64.0])

    context = blur_faces(Image.fromarray(base), boxes, min_size=10).resize((96, 64), Image.LANCZOS)
    stock = FluxKontextPipeline(**tiny_components().as_kwargs())
    ref = stock(image=context, prompt="a photo", height=64, width=96, max_area=64 * 96, guidance_scale=4.0,
                _auto_resize=False, generator=torch.Generator().manual_seed(3), **kw).images
    zero = pipe(base, "a photo", arcface_embeddings=arcface, boxes=boxes, seed=3, min_blur_size=10,
                lambda_arc=0.0, schedule="diffusers", **kw)
    assert np.array_equal(zero.images, ref)


def test_kontext_detected_face_count_must_match_references(arcface):
    pipe = make_pipe(WithAnyoneKontextPipeline, reference_encoder=encoder([(0, 0, 30, 30)]))
    calls = count_transformer_calls(pipe)
    with pytest.raises(BadInputError, match="shows 1 face"):
        pipe(colour_photo((10, 200, 10), size=(64, 64)), arcface_embeddings=arcface, num_inference_steps=1,
             max_sequence_length=16)
    assert calls == []


def test_reference_encoder_uses_the_face_pipeline_aligner():
    from multiid_bench.faces import Face, template_points

    pts = tuple((float(x) + 20.0, float(y) + 10.0) for x, y in template_points("arcface"))

    class LandmarkDetector(FakeDetector):
        def detect(self, images):
            return [[Face(box=(20.0, 10.0, 132.0, 122.0), score=0.9, landmarks=pts)] for _ in images]

    photo = colour_photo((200, 100, 50), size=(160, 140))
    enc = ReferenceEncoder(LandmarkDetector(), FakeFaceModel())  # default aligner: multiid_bench.faces.align_faces
    ids = enc.encode([photo, Image.fromarray(photo)])
    assert ids.arcface.shape == (2, 512) and np.allclose(ids.arcface[0], ids.arcface[1])
    crop = photo[10:122, 20:132]
    np.testing.assert_allclose(ids.arcface[0], FakeFaceModel().embed(crop[None]).ravel(), rtol=0.05)


def test_offline_loader_lists_every_missing_file_before_loading(monkeypatch, tmp_path):
    from multiid_bench.errors import MissingWeightsError
    from multiid_bench.reference_model.pipeline import load_withanyone_pipeline

    monkeypatch.setenv("MBENCH_HOME", str(tmp_path))
    monkeypatch.setenv("MBENCH_OFFLINE", "1")
    with pytest.raises(MissingWeightsError) as err:
        load_withanyone_pipeline(device="cpu")
    assert err.value.exit_code == 3
    listed = [ln.split(" / ")[0].strip() for ln in str(err.value).splitlines() if " / " in ln]
    assert listed == ["insightface-antelopev2", "insightface-antelopev2", "withanyone-flux1-dev", "flux1-dev-diffusers"]
    assert "mbench weights download insightface-antelopev2 withanyone-flux1-dev flux1-dev-diffusers" in str(err.value)


@pytest.mark.parametrize("cls, loader, base_name", [(WithAnyonePipeline, "from_flux", "FluxPipeline"),
                                                   (WithAnyoneKontextPipeline, "from_flux_kontext", "FluxKontextPipeline")])
def test_both_pipelines_load_through_the_shared_base_loader(monkeypatch, cls, loader, base_name):
    """from_flux / from_flux_kontext: components + adapter cast to the transformer's dtype; absent weights exit 3."""
    import sys

    from multiid_bench.errors import MissingWeightsError

    c = tiny_components()

    class FakeBase:
        fail = False

        @classmethod
        def from_pretrained(cls_, path, torch_dtype=None):
            if cls_.fail:
                raise OSError(f"{path} not found")
            return type("Base", (), {"components": c.as_kwargs(), "transformer": c.transformer})()

    module = sys.modules[cls.__module__]
    monkeypatch.setattr(module, base_name, FakeBase)
    adapter = tiny_adapter(c.transformer).to(torch.float64)
    pipe = getattr(cls, loader)("some/folder", adapter=adapter, reference_encoder=encoder())
    assert isinstance(pipe, cls) and pipe.adapter is adapter and pipe.reference_encoder is not None
    assert next(pipe.adapter.parameters()).dtype == c.transformer.dtype
    FakeBase.fail = True
    with pytest.raises(MissingWeightsError, match="weights not available at some/folder"):
        getattr(cls, loader)("some/folder", adapter=adapter)
