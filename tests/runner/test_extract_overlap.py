"""The overlapped face stage: detection of the next group runs on a worker thread while this one embeds,
and the results, counters and batches are exactly those of the sequential path."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from multiid_bench.runner.cache import FeatureCache
from multiid_bench.runner.extract import FaceBackend, FeatureExtractor, ImageSpec
from runner_fakes import FakeDetector, FakeModel, fake_align

COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (40, 200, 200)]


def _images(root: Path, n: int) -> list[ImageSpec]:
    specs = []
    for i in range(n):
        img = np.zeros((48, 48, 3), np.uint8)
        for j in range(1 + i % 3):  # 1, 2 or 3 faces per image
            c = COLOURS[(i + j) % len(COLOURS)]
            img[4 + 14 * j : 16 + 14 * j, 4 + 10 * j : 16 + 10 * j] = c
        path = root / f"im{i:02d}.png"
        Image.fromarray(img).save(path)
        specs.append(ImageSpec(str(path), 1.0 if i % 4 else 1.5))
    return specs


class SlowDetector(FakeDetector):
    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay, self.spans = delay, []

    def detect(self, images):
        t0 = time.perf_counter()
        time.sleep(self.delay)
        out = super().detect(images)
        self.spans.append((threading.current_thread().name, t0, time.perf_counter()))
        return out


class SlowModel(FakeModel):
    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay, self.spans = delay, []

    def embed(self, crops):
        t0 = time.perf_counter()
        time.sleep(self.delay)
        out = super().embed(crops)
        self.spans.append((threading.current_thread().name, t0, time.perf_counter()))
        return out


def _extract(specs, *, overlap: bool, detect_batch: int, batch_size: int, delay: float = 0.0, cache=None):
    det, model = SlowDetector(delay), SlowModel(delay)
    backend = FaceBackend(name="fake", detector=det, model=model, template="fake", align=fake_align)
    ex = FeatureExtractor([backend], cache or FeatureCache(None), batch_size=batch_size, detect_batch=detect_batch,
                          overlap=overlap)
    t0 = time.perf_counter()
    res = ex.run(specs)
    wall = time.perf_counter() - t0
    ex.close()
    return res, ex, det, model, wall


def test_overlapped_equals_sequential_exactly(tmp_path: Path) -> None:
    specs = _images(tmp_path, 11)
    seq, ex_s, det_s, model_s, _ = _extract(specs, overlap=False, detect_batch=8, batch_size=1000)
    ovl, ex_o, det_o, model_o, _ = _extract(specs, overlap=True, detect_batch=3, batch_size=4)
    assert list(seq) == list(ovl)
    n_faces = 0
    for spec in specs:
        a, b = seq[spec].by_model["fake"], ovl[spec].by_model["fake"]
        assert a.faces == b.faces and np.array_equal(a.emb, b.emb)
        n_faces += len(a.faces)
    assert n_faces == sum(1 + i % 3 for i in range(11)) == 21
    # exact batching: ceil(21 / 4) forward calls, the same crops in the same order as one big batch
    assert model_o.calls == 6 and model_s.calls == 1 and model_o.seen == model_s.seen
    assert det_o.calls == 4 and det_o.images_seen == 11  # groups of 3 detector misses
    w_s, w_o = ex_s.work.to_dict(), ex_o.work.to_dict()
    for k in ("images_decoded", "detector_images", "faces_detected", "forward_passes", "images_embedded",
              "cache_misses"):
        assert w_s[k] == w_o[k], k
    assert w_o["embed_batches"] == {"fake": 6} and w_o["images_decoded"] == 11
    assert set(ex_o.stage_seconds) >= {"hash", "decode", "detect:fake-det", "align:fake", "embed:fake"}


def test_detection_of_the_next_group_overlaps_embedding(tmp_path: Path) -> None:
    specs = _images(tmp_path, 8)
    _, ex, det, model, wall = _extract(specs, overlap=True, detect_batch=2, batch_size=2, delay=0.05)
    main = threading.current_thread().name
    assert {name for name, _, _ in det.spans} == {"mbench-detect_0"} and det.calls == 4
    assert {name for name, _, _ in model.spans} == {main}
    overlapping = [(d, m) for d in det.spans for m in model.spans if d[1] < m[2] and m[1] < d[2]]
    assert overlapping, (det.spans, model.spans)
    busy = sum(e - s for _, s, e in det.spans) + sum(e - s for _, s, e in model.spans)
    assert wall < busy - 0.04  # sequential would take at least the sum of both stages
    # the sequential path never overlaps
    _, _, det_s, model_s, _ = _extract(specs, overlap=False, detect_batch=2, batch_size=2, delay=0.05)
    assert not [(d, m) for d in det_s.spans for m in model_s.spans if d[1] < m[2] and m[1] < d[2]]


def test_overlap_with_a_warm_cache_and_a_broken_file(tmp_path: Path) -> None:
    specs = _images(tmp_path, 6)
    cache = FeatureCache(tmp_path / "cache")
    first, *_ = _extract(specs, overlap=True, detect_batch=2, batch_size=3, cache=cache)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    again, ex, det, model, _ = _extract([*specs, ImageSpec(str(bad))], overlap=True, detect_batch=2, batch_size=3,
                                         cache=cache)
    assert det.calls == 0 and model.calls == 0 and ex.work.images_decoded == 0  # all cached, nothing decoded
    for s in specs:
        assert np.array_equal(again[s].by_model["fake"].emb, first[s].by_model["fake"].emb)
    assert again[ImageSpec(str(bad))].error and "broken.png" in again[ImageSpec(str(bad))].error


def test_image_scorers_get_the_files_pixels_not_the_paper_jpeg_view(tmp_path: Path) -> None:
    """With paper_pixels="official" one path is decoded twice (as given, and JPEG round-tripped for the
    paper protocol's face stage); CLIP/aesthetic must see the file's own pixels, whatever the order."""
    from multiid_bench.images import load_image

    rng = np.random.default_rng(0)
    path = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(path)
    for order in ((1, 0), (0, 1)):
        specs = [ImageSpec(str(path), 1.0, jpeg) for jpeg in order]
        _, ex, *_ = _extract(specs, overlap=False, detect_batch=8, batch_size=8)
        assert np.array_equal(ex.last_arrays[str(path)], np.asarray(load_image(path)))
