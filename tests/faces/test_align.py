"""Alignment: templates map onto themselves, parity with insightface's norm_crop and skimage's estimator."""
from __future__ import annotations

import numpy as np
import pytest

from multiid_bench.errors import BadInputError, ConfigError
from multiid_bench.faces import Face, align_faces, template_points
from multiid_bench.faces.align import ARCFACE_TEMPLATE_112, estimate_transform, umeyama_similarity


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def _face(pts: np.ndarray) -> Face:
    x1, y1 = pts.min(axis=0) - 20
    x2, y2 = pts.max(axis=0) + 20
    return Face(box=(x1, y1, x2, y2), score=0.99, landmarks=tuple(map(tuple, pts)))


@pytest.mark.parametrize(("template", "size"), [("arcface", 112), ("arcface", 224), ("arcface", 128),
                                                ("ffhq112", 112), ("ffhq112", 256)])
def test_template_landmarks_map_onto_themselves(template: str, size: int) -> None:
    dst = template_points(template, size)
    m = estimate_transform(dst, template, size)
    assert np.abs(_apply(m, dst) - dst).max() < 1e-3
    # and from anywhere in a photo: a rotated, scaled, shifted copy comes back within 1e-3 px
    rng = np.random.default_rng(size)
    for _ in range(5):
        ang, scale, shift = rng.uniform(-0.5, 0.5), rng.uniform(0.5, 4.0), rng.uniform(0, 400, 2)
        rot = scale * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        src = dst @ rot.T + shift
        assert np.abs(_apply(estimate_transform(src, template, size), src) - dst).max() < 1e-3


def test_template_geometry_matches_spec() -> None:
    ffhq = template_points("ffhq112", 112)
    np.testing.assert_allclose(ffhq[0], (42.21, 52.49), atol=0.01)
    np.testing.assert_allclose(ffhq[4], (68.49, 81.19), atol=0.01)
    assert abs(np.linalg.norm(ffhq[1] - ffhq[0]) - 27.5) < 0.1
    assert abs(np.linalg.norm(ARCFACE_TEMPLATE_112[1] - ARCFACE_TEMPLATE_112[0]) - 35.2) < 0.1
    with pytest.raises(ConfigError, match="no fixed points"):
        template_points("dlib")


def test_umeyama_matches_skimage() -> None:
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(0)
    for _ in range(20):
        src = rng.uniform(0, 500, (5, 2))
        dst = ARCFACE_TEMPLATE_112 + rng.normal(0, 2, (5, 2))
        t = SimilarityTransform.from_estimate(src, dst)
        np.testing.assert_allclose(umeyama_similarity(src, dst), t.params[:2], atol=1e-9)
    with pytest.raises(BadInputError, match="degenerate"):
        umeyama_similarity(np.ones((5, 2)), ARCFACE_TEMPLATE_112)


def test_arcface_crops_equal_insightface_norm_crop(t1, t1_faces) -> None:
    from insightface.utils.face_align import norm_crop

    crops = align_faces(t1, t1_faces, "arcface", 112)
    assert crops.shape == (len(t1_faces), 112, 112, 3) and crops.dtype == np.uint8
    for crop, face in zip(crops, t1_faces):
        ref = norm_crop(t1, face.landmarks_array(), 112)
        assert np.abs(crop.astype(int) - ref.astype(int)).max() <= 1


def test_identity_warp_and_ffhq_border_colour() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    crop = align_faces(img, [_face(template_points("arcface", 112))], "arcface", 112)[0]
    np.testing.assert_array_equal(crop[2:-2, 2:-2], img[2:110, 2:110])
    # a face at the top-left corner: the ffhq112 crop shows facexlib's grey border, RGB (132, 133, 135)
    pts = template_points("ffhq112", 112) - 60
    border = align_faces(img, [_face(pts)], "ffhq112", 112)[0]
    np.testing.assert_array_equal(border[0, 0], (132, 133, 135))
    black = align_faces(img, [_face(template_points("arcface", 112) - 60)], "arcface", 112)[0]
    np.testing.assert_array_equal(black[0, 0], (0, 0, 0))


def test_batched_no_faces_and_bad_input(t1, t1_faces) -> None:
    assert align_faces(t1, [], "ffhq112").shape == (0, 112, 112, 3)
    batch = align_faces(t1, t1_faces, "ffhq112")
    one = align_faces(t1, t1_faces[2:3], "ffhq112")
    np.testing.assert_array_equal(batch[2], one[0])
    with pytest.raises(BadInputError, match="uint8 RGB"):
        align_faces(t1.astype(np.float32), t1_faces, "arcface")
    with pytest.raises(ConfigError, match="unknown alignment template"):
        align_faces(t1, t1_faces, "vgg")  # type: ignore[arg-type]


def test_dlib_chips(t1, t1_faces) -> None:
    chips = align_faces(t1, t1_faces, "dlib", 150)
    assert chips.shape == (len(t1_faces), 150, 150, 3) and chips.dtype == np.uint8
    assert chips.std() > 20  # real face content, not an empty canvas
