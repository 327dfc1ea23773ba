"""Shared face types: a detected :class:`Face`, the :class:`Detector` and :class:`FaceModel` protocols,
and the :class:`FaceModelCard` written into every result.

Coordinates are image pixels of the RGB array the detector saw (x right, y down). Landmarks are always
five points in this order: left eye, right eye, nose tip, left mouth corner, right mouth corner, where
"left" means the image's left (the subject's right eye), as RetinaFace, SCRFD and MTCNN all emit them.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from multiid_bench.errors import BadInputError

__all__ = ["LANDMARK_NAMES", "Detector", "Face", "FaceModel", "FaceModelCard", "box_iou"]

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


@dataclass(frozen=True)
class Face:
    """One detected face: box (x1, y1, x2, y2), detector score and 5 landmarks, in image pixels."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        box = tuple(float(v) for v in self.box)
        lms = tuple((float(x), float(y)) for x, y in self.landmarks)
        if len(box) != 4:
            raise BadInputError(f"Face.box needs 4 numbers (x1, y1, x2, y2), got {len(box)}.")
        if len(lms) != 5:
            raise BadInputError(f"Face.landmarks needs 5 (x, y) points, got {len(lms)}.")
        values = (*box, float(self.score), *(v for p in lms for v in p))
        if not all(math.isfinite(v) for v in values):
            raise BadInputError(f"Face has a non-finite coordinate or score: box={box}, score={self.score}.")
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "score", float(self.score))
        object.__setattr__(self, "landmarks", lms)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def eye_distance(self) -> float:
        """Pixels between the eye landmarks (a size measure that ignores the box style of a detector)."""
        (lx, ly), (rx, ry) = self.landmarks[0], self.landmarks[1]
        return math.hypot(rx - lx, ry - ly)

    def landmarks_array(self) -> np.ndarray:
        """(5, 2) float32 landmarks."""
        return np.asarray(self.landmarks, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"box": list(self.box), "score": self.score, "landmarks": [list(p) for p in self.landmarks]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Face:
        return cls(box=tuple(data["box"]), score=data["score"],  # type: ignore[arg-type]
                   landmarks=tuple(tuple(p) for p in data["landmarks"]))  # type: ignore[arg-type]


@dataclass(frozen=True)
class FaceModelCard:
    """What a face model is and how it was fed: goes into every result and into cache keys."""

    id: str
    version: str
    weights_sha256: str
    template: str  # alignment template: "arcface", "ffhq112" or "dlib"
    crop_size: int  # the crop size the network consumes (crops of other sizes are resized)
    input_convention: str  # e.g. "RGB (x-127.5)/127.5"
    embedding_dim: int
    cosine_scale_note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Detector(Protocol):
    """Image -> faces. ``detect`` takes RGB uint8 (H, W, 3) arrays; each list is sorted by descending score."""

    id: str
    config: dict[str, Any]

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]: ...


@runtime_checkable
class FaceModel(Protocol):
    """Aligned crops -> embeddings. ``embed`` takes (N, S, S, 3) RGB uint8 and returns (N, D) float32."""

    id: str
    card: FaceModelCard

    def embed(self, crops: np.ndarray) -> np.ndarray: ...


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every ``(x1, y1, x2, y2)`` box in ``a`` (N, 4) with every box in ``b`` (M, 4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
