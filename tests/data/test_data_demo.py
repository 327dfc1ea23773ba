"""The offline demo bench: composition, determinism, caching, and that MTCNN still agrees with its boxes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from multiid_bench.data.demo import _make_reference, build_demo_bench, demo_sources, load_demo_manifest, mtcnn_faces
from multiid_bench.data.loaders import load_bench


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    return build_demo_bench(tmp_path_factory.mktemp("demo_a"))


def test_composition(demo) -> None:
    assert demo.id == "demo" and len(demo) == 17
    by_subset = {s: [c for c in demo.cases if c.subset == s] for s in ("p1", "p2", "p3")}
    assert [len(by_subset[s]) for s in ("p1", "p2", "p3")] == [11, 3, 3]
    assert sorted(c.num_persons for c in by_subset["p3"]) == [3, 3, 4]
    for case in demo.cases:
        assert case.gt is not None and case.gt.is_file() and all(r.is_file() for r in case.refs)
        assert len(case.refs) == len(case.boxes) == case.num_persons == len(case.meta["identities"])
        with Image.open(case.gt) as im:
            w, h = im.size
        for x1, y1, x2, y2 in case.boxes:
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert len(case.meta["ref_boxes"]) == case.num_persons and case.prompt


def test_references_are_augmented_not_gt_pixels(demo) -> None:
    manifest = load_demo_manifest()
    sources = demo_sources(manifest)
    for name, person in manifest["persons"].items():
        ref = np.asarray(Image.open(demo.root / "refs" / f"{name}.png").convert("RGB")).astype(int)
        aug = person["ref"]
        if "ref_from" in person:  # a different photo of the person: no augmentation needed, never the GT photo
            other, _ = _make_reference(sources[person["ref_from"]["source"]], person["ref_from"]["face"], aug,
                                       ref.shape[0])
            assert person["ref_from"]["source"] != person["source"]
            np.testing.assert_array_equal(ref, np.asarray(other).astype(int))
            continue
        plain, _ = _make_reference(sources[person["source"]], person["face"],
                                   {"margin": aug["margin"], "scale": aug["scale"]}, ref.shape[0])
        plain_arr = np.asarray(plain).astype(int)
        unflipped = np.asarray(ImageOps.mirror(Image.fromarray(ref.astype(np.uint8)))).astype(int)
        assert np.abs(unflipped - plain_arr).mean() > 2.0, name  # colour jitter changed the pixels
        assert np.abs(ref - plain_arr).mean() > np.abs(unflipped - plain_arr).mean(), name  # and it is mirrored


def test_deterministic_and_cached(demo, tmp_path: Path) -> None:
    again = build_demo_bench(tmp_path / "other")
    assert again.manifest_sha256 == demo.manifest_sha256
    assert _files(again.root) == _files(demo.root)
    stamp = (again.root / "bench.jsonl").stat().st_mtime_ns
    third = build_demo_bench(tmp_path / "other")
    assert third.root == again.root and (again.root / "bench.jsonl").stat().st_mtime_ns == stamp
    via_spec = load_bench("demo", cache_dir=tmp_path / "home")
    assert via_spec.manifest_sha256 == demo.manifest_sha256 and via_spec.id == "demo"


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture
def one_thread():
    """MTCNN's many small convolutions run several times faster on one thread when cores are shared."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow  # ~5 s alone on 2 cores (MTCNN on four photos and nine references); runs by default
def test_mtcnn_still_finds_the_stored_faces(demo, one_thread) -> None:
    """Each stored face box still has an MTCNN face (IoU >= 0.6); regions hold no unlisted confident face;
    each reference image holds one face where its ``ref_boxes`` says."""
    pytest.importorskip("facenet_pytorch")
    manifest = load_demo_manifest()
    sources = demo_sources(manifest)
    names = sorted(sources)
    found = dict(zip(names, mtcnn_faces([sources[n] for n in names], min_face_size=40)))
    for name, person in manifest["persons"].items():
        best = max((_iou(person["face"], b) for b, _ in found[person["source"]]), default=0.0)
        assert best >= 0.6, f"{name}: MTCNN face IoU {best:.2f} with the stored box"
    for case in manifest["cases"]:
        x1, y1, x2, y2 = case["region"]
        listed = [manifest["persons"][p]["face"] for p in case["persons"]]
        for box, prob in found[case["source"]]:
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            if prob >= 0.9 and x1 <= cx <= x2 and y1 <= cy <= y2:
                assert max(_iou(box, f) for f in listed) >= 0.6, f"{case['id']}: unlisted face {box}"
    persons = sorted(manifest["persons"])
    refs = [Image.open(demo.root / "refs" / f"{p}.png") for p in persons]
    ref_box = {c.meta["identities"][k]: c.meta["ref_boxes"][k] for c in demo.cases for k in range(c.num_persons)}
    for name, faces in zip(persons, mtcnn_faces(refs, min_prob=0.9, min_face_size=40)):
        assert len(faces) == 1, f"reference {name}: {len(faces)} faces"
        assert _iou(faces[0][0], ref_box[name]) >= 0.6, name


def test_different_photo_references_give_a_real_angular_gap(demo, one_thread) -> None:
    """dlib: GT and reference of the obama cases are two photos (~0.26-0.33 rad apart, vs ~0.15 for crops of
    the GT photo), and an exact copy of either scores exactly -1 / +1 under the exact copy-paste."""
    from multiid_bench import compute_copy_paste
    from multiid_bench.faces import align_faces, load_detector, load_face_model

    det = load_detector("mtcnn", offline=True)
    model = load_face_model("dlib", offline=True)

    def emb(path: Path) -> np.ndarray:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        faces = det.detect([rgb])[0]
        assert len(faces) == 1, path
        return model.embed(align_faces(rgb, faces, "dlib", model.card.crop_size))[0].astype(np.float64)

    gaps = {}
    for cid in ("p1_obama_portrait", "p1_obama_speech"):
        case = next(c for c in demo.cases if c.id == cid)
        t, r = emb(case.gt), emb(case.refs[0])
        gaps[cid] = float(np.arccos(np.clip(t @ r / np.linalg.norm(t) / np.linalg.norm(r), -1, 1)))
        assert compute_copy_paste(t, t, r) == -1.0  # ground-truth adapter: the GT itself
        assert compute_copy_paste(r, t, r) == 1.0  # copy-reference adapter: the reference itself
        assert compute_copy_paste(t, t, r, norm_eps=1e-6) < -0.99  # paper: within its |x| + 1e-6 offset
    astronaut = next(c for c in demo.cases if c.id == "p1_astronaut")  # a reference cut from the GT photo
    t, r = emb(astronaut.gt), emb(astronaut.refs[0])
    same_photo = float(np.arccos(t @ r / np.linalg.norm(t) / np.linalg.norm(r)))
    assert min(gaps.values()) > 0.2 and min(gaps.values()) > 1.5 * same_photo, (gaps, same_photo)
