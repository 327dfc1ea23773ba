"""The data types of the runner's face stage: image views, their faces and embeddings, face backends, counters.

Split from :mod:`multiid_bench.runner.extract` (which re-exports every name) so the extractor module holds
only the batching, caching and overlap logic.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from multiid_bench.runner.cache import card_dict, detector_key, model_key

__all__ = ["AlignFn", "DetectorLike", "FaceBackend", "FaceSet", "ImageSpec", "ViewResult", "WorkCounters", "face_dict"]

AlignFn = Callable[[np.ndarray, Sequence[Mapping[str, Any]]], np.ndarray]


class DetectorLike(Protocol):
    """What the face stage needs of a detector (``faces.types.Detector`` and the tests' fakes both fit)."""

    id: str
    config: Mapping[str, Any]

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Any]]: ...


class _FaceModel(Protocol):
    id: str
    card: Any

    def embed(self, crops: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ImageSpec:
    """One image as a detector will see it: a file, optionally black-padded to ``pad_ratio`` (references)."""

    path: str
    pad_ratio: float = 1.0
    #: JPEG q75 encode/decode cycles applied after decoding, before padding: the paper protocol's view of
    #: the pixels the official pipeline stored (``RunConfig.paper_pixels``); 0 = as given.
    jpeg: int = 0


@dataclass
class FaceSet:
    """Faces of one image view under one face model: detections (dicts) and ``(K, D)`` embeddings."""

    faces: list[dict[str, Any]]
    emb: np.ndarray


@dataclass
class ViewResult:
    """Everything the metrics need about one image view, or the reason it could not be read."""

    sha256: str | None = None
    error: str | None = None
    by_model: dict[str, FaceSet] = field(default_factory=dict)
    by_detector: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class FaceBackend:
    """One face model of a profile with the detector and alignment it is used with.

    ``name`` is the metric-key name (``sim_gt.<name>``). ``align(image, faces)`` returns aligned
    ``(K, S, S, 3)`` uint8 RGB crops; by default ``multiid_bench.faces.align_faces`` with ``template``.
    """

    name: str
    detector: DetectorLike
    model: _FaceModel
    template: str
    ref_policy: str = "top_face"
    align: AlignFn | None = None

    def __post_init__(self) -> None:
        self.det_key = detector_key(self.detector.id, dict(getattr(self.detector, "config", {}) or {}))
        self.model_key = model_key(self.model.card, self.det_key, self.template)
        if self.align is None:
            self.align = _default_align(self.template, int(getattr(self.model.card, "crop_size", 112)))

    @property
    def embedding_dim(self) -> int:
        return int(getattr(self.model.card, "embedding_dim", 0) or 0)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "detector": self.detector.id, "detector_config": dict(self.detector.config),
            "template": self.template, "ref_policy": self.ref_policy, "card": card_dict(self.model.card),
            "detector_key": self.det_key, "model_key": self.model_key,
        }


def _default_align(template: str, size: int) -> AlignFn:
    def align(image: np.ndarray, faces: Sequence[Mapping[str, Any]]) -> np.ndarray:
        from multiid_bench.faces import Face, align_faces

        return align_faces(image, [Face.from_dict(dict(f)) for f in faces], template, size)  # type: ignore[arg-type]

    return align


@dataclass
class WorkCounters:
    """The work a run did: what ``results.json`` reports under ``work`` (summed over shards/sessions)."""

    images_hashed: int = 0
    images_decoded: int = 0
    detector_images: dict[str, int] = field(default_factory=dict)
    faces_detected: dict[str, int] = field(default_factory=dict)
    forward_passes: dict[str, int] = field(default_factory=dict)
    embed_batches: dict[str, int] = field(default_factory=dict)
    images_embedded: dict[str, int] = field(default_factory=dict)
    cache_hits: dict[str, int] = field(default_factory=dict)
    cache_misses: dict[str, int] = field(default_factory=dict)

    def bump(self, counter: str, key: str, n: int = 1) -> None:
        d: dict[str, int] = getattr(self, counter)
        d[key] = d.get(key, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {k: (dict(sorted(v.items())) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}

    @classmethod
    def total(cls, parts: Sequence[Mapping[str, Any]]) -> "WorkCounters":
        out = cls()
        for part in parts:
            for k, v in part.items():
                if not hasattr(out, k):
                    continue
                if isinstance(v, Mapping):
                    for key, n in v.items():
                        out.bump(k, key, int(n))
                else:
                    setattr(out, k, getattr(out, k) + int(v))
        return out


def face_dict(face: Any) -> dict[str, Any]:
    if isinstance(face, Mapping):
        d = dict(face)
    else:
        d = dict(face.to_dict())
    d["box"] = [float(v) for v in d["box"]]
    d["score"] = float(d["score"])
    d["landmarks"] = [[float(x), float(y)] for x, y in d.get("landmarks") or ()]
    return d


#: Former name (0.1.0), kept so external scripts that built backends by hand keep working.
Backend = FaceBackend
