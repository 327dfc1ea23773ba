"""The face stage of the runner: decode once, detect once per detector, embed once per face model.

Given the image views a chunk of cases needs (generated, GT, padded references), :class:`FeatureExtractor`
returns, per view, the detected faces of each detector and the embeddings of each face model:

1. an entry already in the :class:`~multiid_bench.runner.cache.FeatureCache` (or this run's memory) is
   reused, so the image is not even decoded;
2. otherwise the file is read and decoded once (``multiid_bench.images.decode_image``), padded if it is a
   reference, run through each detector that misses (all images of the chunk in one call), aligned, and
   the faces of *all* images of the chunk are embedded together in batches of ``batch_size``.

Per-image failures (a missing or corrupt file, a detector crash on one image) become an ``error`` on that
view, so the case that needs it fails with the reason and the rest of the run goes on. Missing weights or
dependencies (``MBenchError``) stop the run.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from multiid_bench.errors import MBenchError
from multiid_bench.runner.cache import FeatureCache, detector_key, model_key, view_key

__all__ = ["Backend", "FaceSet", "FeatureExtractor", "ImageSpec", "ViewResult", "WorkCounters"]

log = logging.getLogger(__name__)

AlignFn = Callable[[np.ndarray, Sequence[Mapping[str, Any]]], np.ndarray]


class _Detector(Protocol):
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
class Backend:
    """One face model of a profile with the detector and alignment it is used with.

    ``name`` is the metric-key name (``sim_gt.<name>``). ``align(image, faces)`` returns aligned
    ``(K, S, S, 3)`` uint8 RGB crops; by default ``multiid_bench.faces.align_faces`` with ``template``.
    """

    name: str
    detector: _Detector
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
        from multiid_bench.runner.cache import _card_dict  # the same view of the card the key hashes

        return {
            "name": self.name, "detector": self.detector.id, "detector_config": dict(self.detector.config),
            "template": self.template, "ref_policy": self.ref_policy, "card": _card_dict(self.model.card),
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


def _face_dict(face: Any) -> dict[str, Any]:
    if isinstance(face, Mapping):
        d = dict(face)
    else:
        d = dict(face.to_dict())
    d["box"] = [float(v) for v in d["box"]]
    d["score"] = float(d["score"])
    d["landmarks"] = [[float(x), float(y)] for x, y in d.get("landmarks") or ()]
    return d


class FeatureExtractor:
    """Batched, cached face detection and embedding over image views (see the module docstring)."""

    def __init__(
        self, backends: Sequence[Backend], cache: FeatureCache, *, batch_size: int = 32,
        detect_batch: int = 8, counters: WorkCounters | None = None, memo_size: int = 4096,
    ) -> None:
        names = [b.name for b in backends]
        if len(set(names)) != len(names):
            raise ValueError(f"face model names must be unique in a profile, got {names}")
        self.backends = list(backends)
        self.cache = cache
        self.batch_size = batch_size
        self.detect_batch = detect_batch
        self.work = counters or WorkCounters()
        self._sha: dict[tuple[str, int, int], str] = {}
        self._memo: dict[tuple[str, str], Any] = {}
        self._memo_size = memo_size
        self.last_arrays: dict[str, np.ndarray] = {}
        for b in self.backends:
            cache.describe("emb", b.model_key, b.describe())

    # ---- hashing ------------------------------------------------------------------------------
    def sha256(self, path: str) -> str:
        """File sha256, hashed once per run (keyed by path, size and mtime)."""
        from multiid_bench.images import image_sha256

        st = os.stat(path)
        key = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
        if key not in self._sha:
            self._sha[key] = image_sha256(path)
            self.work.images_hashed += 1
        return self._sha[key]

    def _remember(self, key: tuple[str, str], value: Any) -> None:
        if len(self._memo) >= self._memo_size:
            self._memo.pop(next(iter(self._memo)))
        self._memo[key] = value

    # ---- main entry ---------------------------------------------------------------------------
    def run(self, specs: Sequence[ImageSpec]) -> dict[ImageSpec, ViewResult]:
        """Faces and embeddings for every spec (deduplicated); errors are per view, never raised."""
        results: dict[ImageSpec, ViewResult] = {}
        views: dict[ImageSpec, str] = {}
        for spec in dict.fromkeys(specs):
            try:
                sha = self.sha256(spec.path)
            except FileNotFoundError:
                results[spec] = ViewResult(error=f"image file {spec.path} does not exist")
                continue
            except (OSError, MBenchError) as e:
                results[spec] = ViewResult(error=str(e))
                continue
            results[spec] = ViewResult(sha256=sha)
            views[spec] = view_key(sha, spec.pad_ratio)
        arrays: dict[ImageSpec, np.ndarray] = {}
        for det_id, group in self._detector_groups().items():
            self._detect(det_id, group[0], views, results, arrays)
        for backend in self.backends:
            self._embed(backend, views, results, arrays)
        # Unpadded pixels decoded here, for the image scorers of the same chunk (decode once).
        self.last_arrays = {s.path: a for s, a in arrays.items() if s.pad_ratio == 1.0}
        return results

    def _detector_groups(self) -> dict[str, list[Backend]]:
        groups: dict[str, list[Backend]] = {}
        for b in self.backends:
            groups.setdefault(b.det_key, []).append(b)
        return groups

    def _array(self, spec: ImageSpec, results: dict[ImageSpec, ViewResult], arrays: dict[ImageSpec, np.ndarray]) -> np.ndarray | None:
        """Decode (once) and pad; a decode failure is recorded on the view."""
        if spec in arrays:
            return arrays[spec]
        if results[spec].error:
            return None
        from multiid_bench.images import decode_image

        try:
            decoded = decode_image(spec.path)
        except MBenchError as e:
            results[spec].error = str(e)
            return None
        self.work.images_decoded += 1
        if spec.pad_ratio == 1.0:
            arr = decoded.array
        else:  # the paper's reference padding (eval-protocol section 3.1), one implementation for all
            from multiid_bench.data.refcrop import pad_reference

            arr = pad_reference(np.asarray(decoded.array), spec.pad_ratio)
        arrays[spec] = arr
        return arr

    def _detect(
        self, det_key: str, backend: Backend, views: Mapping[ImageSpec, str],
        results: dict[ImageSpec, ViewResult], arrays: dict[ImageSpec, np.ndarray],
    ) -> None:
        det = backend.detector
        todo: list[ImageSpec] = []
        for spec, view in views.items():
            memo = self._memo.get((det_key, view))
            faces = memo if memo is not None else self.cache.get_faces(det_key, view)
            if faces is not None:
                results[spec].by_detector[det_key] = faces
                self.work.bump("cache_hits", f"det:{det.id}")
                self._remember((det_key, view), faces)
            else:
                todo.append(spec)
        if todo:
            self.work.bump("cache_misses", f"det:{det.id}", len(todo))
        for start in range(0, len(todo), self.detect_batch):
            part = [s for s in todo[start : start + self.detect_batch] if self._array(s, results, arrays) is not None]
            if not part:
                continue
            found = self._detect_batch(det, part, arrays, results)
            for spec, faces in found.items():
                dicts = [_face_dict(f) for f in faces]
                results[spec].by_detector[det_key] = dicts
                self.cache.put_faces(det_key, views[spec], dicts)
                self._remember((det_key, views[spec]), dicts)
                self.work.bump("detector_images", det.id)
                self.work.bump("faces_detected", det.id, len(dicts))

    def _detect_batch(
        self, det: _Detector, part: list[ImageSpec], arrays: Mapping[ImageSpec, np.ndarray],
        results: dict[ImageSpec, ViewResult],
    ) -> dict[ImageSpec, list[Any]]:
        try:
            out = det.detect([arrays[s] for s in part])
            return dict(zip(part, out))
        except MBenchError:
            raise
        except Exception as e:  # isolate the image that breaks the detector; the others go on
            if len(part) == 1:
                results[part[0]].error = f"face detector {det.id} failed on {part[0].path}: {type(e).__name__}: {e}"
                log.warning("%s", results[part[0]].error)
                return {}
            merged: dict[ImageSpec, list[Any]] = {}
            for s in part:
                merged.update(self._detect_batch(det, [s], arrays, results))
            return merged

    def _embed(
        self, b: Backend, views: Mapping[ImageSpec, str], results: dict[ImageSpec, ViewResult],
        arrays: dict[ImageSpec, np.ndarray],
    ) -> None:
        todo: list[ImageSpec] = []
        for spec, view in views.items():
            res = results[spec]
            faces = res.by_detector.get(b.det_key)
            if res.error or faces is None:
                continue
            memo = self._memo.get((b.model_key, view))
            emb = memo if memo is not None else self.cache.get_embeddings(b.model_key, view)
            if emb is not None and emb.shape[0] == len(faces):
                res.by_model[b.name] = FaceSet(faces, emb)
                self.work.bump("cache_hits", f"emb:{b.name}")
                self._remember((b.model_key, view), emb)
            else:
                todo.append(spec)
        if todo:
            self.work.bump("cache_misses", f"emb:{b.name}", len(todo))
        crops: list[np.ndarray] = []
        owners: list[tuple[ImageSpec, int]] = []
        for spec in todo:
            faces = results[spec].by_detector[b.det_key]
            if not faces:
                owners.append((spec, 0))
                continue
            arr = self._array(spec, results, arrays)
            if arr is None:
                continue
            aligned = np.asarray(b.align(arr, faces))  # type: ignore[misc]
            crops.append(aligned)
            owners.append((spec, len(faces)))
        emb_all = self._embed_crops(b, crops)
        offset = 0
        for spec, k in owners:
            emb = emb_all[offset : offset + k]
            offset += k
            if not np.all(np.isfinite(emb)):
                results[spec].error = f"face model {b.name} returned NaN/inf embeddings for {spec.path}"
                continue
            faces = results[spec].by_detector[b.det_key]
            results[spec].by_model[b.name] = FaceSet(faces, emb)
            self.cache.put_embeddings(b.model_key, views[spec], emb)
            self._remember((b.model_key, views[spec]), emb)
            self.work.bump("images_embedded", b.name)

    def _embed_crops(self, b: Backend, crops: list[np.ndarray]) -> np.ndarray:
        """All crops of the chunk through the model in batches of ``batch_size``; ``(N, D)`` float32."""
        if not crops:
            return np.zeros((0, b.embedding_dim), dtype=np.float32)
        stack = np.concatenate(crops, axis=0)
        out = []
        for start in range(0, stack.shape[0], self.batch_size):
            batch = stack[start : start + self.batch_size]
            out.append(np.asarray(b.model.embed(batch), dtype=np.float32))
            self.work.bump("embed_batches", b.name)
            self.work.bump("forward_passes", b.name, int(batch.shape[0]))
        return np.concatenate(out, axis=0)
