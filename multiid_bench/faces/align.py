"""5-point face alignment onto the templates the official evaluation uses (eval-protocol §3.2-3.3).

* ``"arcface"``: insightface ``norm_crop``: least-squares similarity transform (Umeyama, as
  ``skimage.transform.SimilarityTransform.estimate``) onto the standard ArcFace 112 template, bilinear
  warp, black border. Sizes that are multiples of 112 scale the template; multiples of 128 scale by
  size/128 and shift x by 8*size/128, as insightface does.
* ``"ffhq112"``: facexlib ``FaceRestoreHelper(face_size=112)``: the FFHQ-512 template scaled by
  size/512, ``cv2.estimateAffinePartial2D(method=LMEDS)``, bilinear warp, constant border. facexlib
  works in BGR with border (135, 133, 132); in our RGB arrays that is (132, 133, 135), so the crops are
  pixel-identical after the colour-order swap. This template is looser than ArcFace's (eye distance
  ~27.5 px vs ~35.2 px at 112): AdaFace/FaceNet see these crops in the official numbers.
* ``"dlib"``: dlib's own face chip: its 5-point shape predictor (shipped in face_recognition_models) is
  run inside each detected box and ``dlib.get_face_chip(size, padding=0.25)`` cuts the chip the dlib
  recogniser was trained on. The detector's landmarks are not used: dlib's predictor marks eye corners
  and the nose base, which is the geometry its recogniser expects.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Literal

import numpy as np

from multiid_bench.errors import BadInputError, ConfigError
from multiid_bench.faces.types import Face

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "FFHQ_TEMPLATE_512",
    "TEMPLATES",
    "align_faces",
    "estimate_transform",
    "template_points",
    "umeyama_similarity",
]

Template = Literal["arcface", "ffhq112", "dlib"]
TEMPLATES: tuple[str, ...] = ("arcface", "ffhq112", "dlib")

ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
FFHQ_TEMPLATE_512 = np.array(
    [[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
     [201.26117, 371.41043], [313.08905, 371.15118]],
    dtype=np.float64,
)
_FFHQ_BORDER_RGB = (132, 133, 135)  # facexlib's BGR (135, 133, 132)
_DLIB_PADDING = 0.25


def template_points(template: str, size: int = 112) -> np.ndarray:
    """(5, 2) target landmark positions of ``template`` in a ``size`` x ``size`` crop."""
    if size <= 0:
        raise ConfigError(f"crop size must be positive, got {size}.")
    if template == "arcface":
        if size % 112 == 0 or size % 128 != 0:
            return ARCFACE_TEMPLATE_112 * (size / 112.0)
        ratio = size / 128.0
        pts = ARCFACE_TEMPLATE_112 * ratio
        pts[:, 0] += 8.0 * ratio
        return pts
    if template == "ffhq112":
        return FFHQ_TEMPLATE_512 * (size / 512.0)
    raise ConfigError(f"template {template!r} has no fixed points; choose one of {TEMPLATES}.")


def umeyama_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst``.

    Umeyama (1991), the estimator behind skimage's ``SimilarityTransform.estimate``. Returns (2, 3).
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    n = src.shape[0]
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / n
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[-1] = -1.0
    rank = np.linalg.matrix_rank(cov)
    if rank == 0:
        raise BadInputError("landmarks are degenerate (all points coincide); cannot align this face.")
    if rank == 1:  # collinear points: pick the proper rotation, as skimage does
        flip = np.array([1.0, 1.0 if np.linalg.det(u) * np.linalg.det(vt) > 0 else -1.0])
        rot = u @ np.diag(flip) @ vt
    else:
        rot = u @ np.diag(d) @ vt
    var_s = (s0**2).sum() / n
    scale = (sig * d).sum() / var_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def estimate_transform(landmarks: np.ndarray, template: str, size: int = 112) -> np.ndarray:
    """(2, 3) affine matrix taking image landmarks to ``template`` positions in a ``size`` crop."""
    import cv2

    dst = template_points(template, size)
    lm = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    if template == "arcface":
        return umeyama_similarity(lm, dst)
    m, _ = cv2.estimateAffinePartial2D(lm.astype(np.float32), dst.astype(np.float32), method=cv2.LMEDS)
    if m is None:
        raise BadInputError("cv2.estimateAffinePartial2D found no transform for these landmarks (degenerate face).")
    return m


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
        raise BadInputError(f"align_faces expects an (H, W, 3) uint8 RGB array, got {got}.")
    return np.ascontiguousarray(image)


def align_faces(
    image: np.ndarray,
    faces: Sequence[Face],
    template: Template = "arcface",
    size: int = 112,
) -> np.ndarray:
    """Warp every face of ``image`` onto ``template``: returns (K, size, size, 3) uint8 RGB (K = len(faces)).

    Example:
        >>> import numpy as np
        >>> from multiid_bench.faces.types import Face
        >>> pts = tuple(map(tuple, template_points("arcface")))
        >>> face = Face(box=(0, 0, 112, 112), score=1.0, landmarks=pts)
        >>> align_faces(np.zeros((112, 112, 3), np.uint8), [face], "arcface").shape
        (1, 112, 112, 3)
    """
    import cv2

    if template not in TEMPLATES:
        raise ConfigError(f"unknown alignment template {template!r}; choose one of {TEMPLATES}.")
    img = _check_image(image)
    if not faces:
        return np.zeros((0, size, size, 3), dtype=np.uint8)
    if template == "dlib":
        return _dlib_chips(img, faces, size)
    border = (0, 0, 0) if template == "arcface" else _FFHQ_BORDER_RGB
    out = np.empty((len(faces), size, size, 3), dtype=np.uint8)
    for k, face in enumerate(faces):
        m = estimate_transform(face.landmarks_array(), template, size)
        out[k] = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    return out


_dlib_lock = threading.Lock()
_dlib_predictor: object | None = None


def _dlib_shape_predictor() -> object:
    """dlib's 5-point shape predictor, resolved (and sha256-checked) through the weight store."""
    global _dlib_predictor
    with _dlib_lock:
        if _dlib_predictor is None:
            from multiid_bench.faces._deps import require
            from multiid_bench.weights import get_store

            dlib = require("dlib", "dlib-bin")
            path = get_store().resolve("dlib-face-recognition-v1", "shape_predictor_5_face_landmarks.dat")
            _dlib_predictor = dlib.shape_predictor(str(path))
        return _dlib_predictor


def _dlib_chips(img: np.ndarray, faces: Sequence[Face], size: int) -> np.ndarray:
    from multiid_bench.faces._deps import require

    dlib = require("dlib", "dlib-bin")
    predictor = _dlib_shape_predictor()
    h, w = img.shape[:2]
    shapes = dlib.full_object_detections()
    for face in faces:
        x1, y1, x2, y2 = face.box
        rect = dlib.rectangle(int(round(max(0.0, x1))), int(round(max(0.0, y1))),
                              int(round(min(w - 1.0, x2))), int(round(min(h - 1.0, y2))))
        shapes.append(predictor(img, rect))
    chips = dlib.get_face_chips(img, shapes, size=size, padding=_DLIB_PADDING)
    return np.stack([np.asarray(c, dtype=np.uint8) for c in chips]).reshape(len(faces), size, size, 3)
