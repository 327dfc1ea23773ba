"""Reference crops: exact crop windows, pixel placement, padding, selection, caching and mode records."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_fixtures import FakeDetector, FakeFace
from multiid_bench.data.case import Bench, Case
from multiid_bench.data.loaders import load_bench
from multiid_bench.data.refcrop import (
    pad_reference,
    prepare_reference_crops,
    reference_info,
    reference_mode,
    select_face,
    square_face_box,
)
from multiid_bench.errors import BadInputError

RED, GREEN = (220, 30, 30), (30, 200, 60)


@pytest.mark.parametrize(
    ("box", "size", "expected"),
    [
        ((10.7, 20.2, 50.9, 100.0), (200, 200), (0, 20, 70, 100)),  # tall: x grows 20|20, clipped at 0
        ((30, 40, 91, 60), (200, 200), (30, 20, 91, 81)),  # wide, odd diff 41: 20 above, 21 below
        ((-3.7, 5.2, 20.9, 40.1), (200, 200), (0, 5, 26, 40)),  # int() truncates toward zero: -3.7 -> -3
        ((180.5, 150.2, 199.9, 199.0), (200, 190), (165, 150, 200, 190)),  # clipped right and bottom
        ((5, 5, 45, 45), (100, 100), (5, 5, 45, 45)),  # already square
    ],
)
def test_square_face_box_exact(box, size, expected) -> None:
    assert square_face_box(box, size) == expected


def test_square_face_box_outside_image() -> None:
    with pytest.raises(BadInputError, match="outside the 50x50 image"):
        square_face_box((60, 60, 80, 80), (50, 50))


def test_select_face_takes_highest_score_first_on_ties() -> None:
    a, b, c = FakeFace((0, 0, 1, 1), 0.5), FakeFace((1, 1, 2, 2), 0.9), FakeFace((2, 2, 3, 3), 0.9)
    assert select_face([a, b, c]) is b and select_face([]) is None


def test_pad_reference_exact() -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    padded = np.asarray(pad_reference(Image.fromarray(arr)))
    assert padded.shape == (768, 768, 3)
    assert np.array_equal(padded[128:640, 128:640], arr)
    mask = np.ones((768, 768), bool)
    mask[128:640, 128:640] = False
    assert not padded[mask].any()
    odd = rng.integers(1, 256, (50, 101, 3), dtype=np.uint8)  # w=101, h=50 -> S=int(151.5)=151, at (25, 50)
    p_arr = pad_reference(odd)
    assert p_arr.shape == (151, 151, 3) and np.array_equal(p_arr[50:100, 25:126], odd)
    assert int(p_arr.astype(bool).sum()) == int(odd.astype(bool).sum())
    assert np.array_equal(np.asarray(pad_reference(Image.fromarray(odd))), p_arr)  # PIL and array agree


def _synthetic(path: Path) -> Path:
    """Black 200x160 image; face area x 60-100, y 40-120 red with green flanks x 40-60 and 100-120."""
    arr = np.zeros((160, 200, 3), np.uint8)
    arr[40:120, 40:120] = GREEN
    arr[40:120, 60:100] = RED
    Image.fromarray(arr).save(path)
    return path


def _bench(tmp_path: Path, ref: Path, n_cases: int = 2) -> Bench:
    cases = [Case(id=f"c{i}", subset="p1", prompt="p", gt=ref, refs=(ref,), num_persons=1) for i in range(n_cases)]
    return Bench(id="syn", root=tmp_path, cases=tuple(cases))


def _detector(**kw) -> FakeDetector:
    def faces(im: np.ndarray) -> list[FakeFace]:
        if not im.any():
            return []
        return [FakeFace((0.0, 0.0, 30.0, 30.0), 0.40), FakeFace((60.6, 40.3, 100.9, 120.0), 0.95)]

    return FakeDetector(faces_for=faces, **kw)


def test_prepared_crop_geometry_and_pixels(tmp_path: Path) -> None:
    ref = _synthetic(tmp_path / "ref.png")
    det = _detector()
    bench = _bench(tmp_path, ref)
    out = prepare_reference_crops(bench, detector=det, cache_dir=tmp_path / "cache", jpeg_quality=None)
    assert det.images_seen == 1  # two cases share the reference: detected once
    case = out.cases[0]
    assert case.meta["ref_mode"] == "prepared_crops" and case.meta["raw_refs"] == [str(ref)]
    crop_meta = case.meta["ref_crop"]
    assert crop_meta["windows"] == [[40, 40, 120, 120]] and crop_meta["scores"] == [0.95]
    assert crop_meta["detector"] == "fake-detector" and case.meta["ref_crop_failures"] == []
    assert out.cases[1].refs == case.refs and case.refs[0].suffix == ".png"
    crop = np.asarray(Image.open(case.refs[0]).convert("RGB"))
    assert crop.shape == (512, 512, 3)
    # window x 40..120 -> output x = (x - 40) * 6.4: green 0..128, red 128..384, green 384..512
    assert tuple(crop[256, 256]) == RED and tuple(crop[256, 60]) == GREEN and tuple(crop[256, 450]) == GREEN
    assert tuple(crop[10, 256]) == RED and tuple(crop[500, 256]) == RED
    padded = np.asarray(pad_reference(Image.open(case.refs[0])))
    assert padded.shape == (768, 768, 3) and np.array_equal(padded[128:640, 128:640], crop)
    assert reference_mode(out) == "prepared_crops" and reference_mode(bench) == "raw_refs"
    info = reference_info(out)
    assert info["mode"] == "prepared_crops" and info["crop"][0]["detector"] == "fake-detector"
    assert info["crop_failures"] == [] and info["pad_ratio_at_scoring"] == 1.5


def test_default_is_jpeg_q75_like_the_generator(tmp_path: Path) -> None:
    out = prepare_reference_crops(_bench(tmp_path, _synthetic(tmp_path / "r.png"), 1), detector=_detector(),
                                  cache_dir=tmp_path / "c")
    path = out.cases[0].refs[0]
    assert path.suffix == ".jpg" and path.read_bytes()[:3] == b"\xff\xd8\xff"
    assert out.cases[0].meta["ref_crop"]["jpeg_quality"] == 75
    px = np.asarray(Image.open(path).convert("RGB"))[256, 256].astype(int)
    assert np.abs(px - np.array(RED)).max() <= 6


def test_cache_and_hash(tmp_path: Path) -> None:
    ref = _synthetic(tmp_path / "ref.png")
    bench = _bench(tmp_path, ref)
    det = _detector()
    first = prepare_reference_crops(bench, detector=det, cache_dir=tmp_path / "c1")
    second = prepare_reference_crops(bench, detector=det, cache_dir=tmp_path / "c1")
    assert det.images_seen == 1 and second.cases == first.cases  # served from the disk cache
    other_dir = prepare_reference_crops(bench, detector=det, cache_dir=tmp_path / "c2")
    assert det.images_seen == 2
    assert other_dir.manifest_sha256 == first.manifest_sha256 != bench.manifest_sha256
    assert other_dir.cases[0].refs[0].read_bytes() == first.cases[0].refs[0].read_bytes()  # deterministic
    other_cfg = _detector(config={"threshold": 0.9})
    changed = prepare_reference_crops(bench, detector=other_cfg, cache_dir=tmp_path / "c1")
    assert other_cfg.images_seen == 1 and changed.manifest_sha256 != first.manifest_sha256
    assert changed.cases[0].refs[0] != first.cases[0].refs[0]


def test_no_face_keeps_raw_reference_and_says_so(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 64)).save(blank)
    bench = _bench(tmp_path, blank, 1)
    out = prepare_reference_crops(bench, detector=_detector(), cache_dir=tmp_path / "c")
    case = out.cases[0]
    assert case.refs == (blank,)
    assert case.meta["ref_crop_failures"] == [{"index": 0, "reason": "no face detected in reference blank.png by fake-detector"}]
    assert reference_info(out)["crop_failures"][0]["case"] == "c0"


def test_prepared_cases_are_left_alone(tmp_path: Path) -> None:
    ref = _synthetic(tmp_path / "ref.png")
    case = Case(id="o", subset="p1", prompt="p", gt=ref, refs=(ref,), meta={"ref_mode": "prepared_crops"})
    bench = Bench(id="off", root=tmp_path, cases=(case,))
    det = _detector()
    out = prepare_reference_crops(bench, detector=det, cache_dir=tmp_path / "c")
    assert det.images_seen == 0 and out.cases == bench.cases


def test_prepare_on_loaded_manifest(jsonl_bench: Path, tmp_path: Path) -> None:
    """Real loader output, raw refs that are plain colour squares: the fake detector boxes the centre."""
    det = FakeDetector(faces_for=lambda im: [FakeFace((4.0, 3.0, 12.0, 9.0), 0.9)])
    out = prepare_reference_crops(load_bench(jsonl_bench), detector=det, cache_dir=tmp_path / "c")
    assert det.images_seen == 3
    assert [c.meta["ref_crop"]["windows"] for c in out.cases] == [[[4, 2, 12, 10]], [[4, 2, 12, 10]] * 2]
    assert json.loads(json.dumps(out.cases[1].to_dict()))["meta"]["ref_mode"] == "prepared_crops"
