"""Content-addressed cache of face detections and face embeddings, on disk.

Why: GT photos and references are the same for every model evaluated on a bench, so their faces are
detected and embedded once, ever. An entry is addressed by what determines its numbers and nothing else:

* detections: (image content sha256 + view, detector id, detector config, preprocessing version);
* embeddings: the detection key plus (face model id, version, weights sha256, alignment template, crop
  size, input convention).

The key never contains a path, a rank, a world size or a batch size, so any run, shard or resumed process
reuses any other's work. Writes are atomic (temporary file + ``os.replace``): concurrent shards may write
the same entry, and a killed process never leaves a half-written one that a later run would trust.

Entries are checked on every read, never trusted (docs/results.md, "Cache integrity"): each carries what it
was made from (kind, key, view; for embeddings the shape and dtype) and the sha256 of its own payload. An
entry whose header, checksum, shape or values do not match is a miss: it is recomputed and rewritten, with a
warning. Writes are best effort: a cache that cannot be written (read-only, full, not creatable) costs one
warning and speed, never the run; results are identical with or without it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from multiid_bench._io import atomic_write_bytes, cache_root

#: The one cache-root rule lives in ``multiid_bench._io`` (the judge and the weights store share it).
default_cache_root = cache_root

__all__ = ["ENTRY_FORMAT", "PREPROCESS_VERSION", "CacheEntryError", "FeatureCache", "card_dict", "check_faces",
           "default_cache_root", "detector_key", "model_key", "view_key"]

log = logging.getLogger(__name__)

#: Bump when decoding, reference padding or alignment code changes the pixels a model sees.
PREPROCESS_VERSION = "1"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def view_key(sha256: str, pad_ratio: float = 1.0) -> str:
    """Key of the pixels a detector sees: file content plus the view (as stored, or black-padded).

    Example:
        >>> view_key("ab" * 32, 1.0).endswith("-raw"), view_key("ab" * 32, 1.5).endswith("-pad1.5")
        (True, True)
    """
    return f"{sha256}-raw" if pad_ratio == 1.0 else f"{sha256}-pad{pad_ratio:g}"


def card_dict(card: Any) -> dict[str, Any]:
    """A face model's card as the plain dict its cache key hashes (and ``FaceBackend.describe`` records)."""
    if dataclasses.is_dataclass(card) and not isinstance(card, type):
        return {k: v for k, v in dataclasses.asdict(card).items()}
    if hasattr(card, "to_dict"):
        return dict(card.to_dict())
    return dict(vars(card))


def detector_key(detector_id: str, config: Mapping[str, Any]) -> str:
    """Key of a detector: its id, its full config (thresholds, sizes) and the preprocessing version."""
    return _digest({"detector": detector_id, "config": dict(config), "preprocess": PREPROCESS_VERSION})


def model_key(card: Any, det_key: str, template: str) -> str:
    """Key of a face model as used in a profile entry: its card (id, version, weights sha256, crop size,
    input convention...), the detector that found the faces and the alignment template."""
    return _digest({"card": card_dict(card), "detector": det_key, "template": template, "preprocess": PREPROCESS_VERSION})


#: Format of an entry file: one JSON header line, then the payload (canonical JSON or raw float32 bytes).
ENTRY_FORMAT = 2
_DET_SUFFIX, _EMB_SUFFIX = ".det", ".emb"


class CacheEntryError(ValueError):
    """A cache entry failed its check (header, checksum, shape, values); the caller recomputes it."""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))


def check_faces(faces: Any) -> list[dict[str, Any]]:
    """Detections as the extractor stores them (``box`` 4 numbers, ``score``, ``landmarks`` pairs), or raise.

    Example:
        >>> check_faces([{"box": [0, 0, 4, 4], "score": 0.9, "landmarks": [[1, 2]]}])[0]["score"]
        0.9
    """
    if not isinstance(faces, list):
        raise CacheEntryError(f"faces is a {type(faces).__name__}, not a list")
    for i, f in enumerate(faces):
        if not isinstance(f, dict):
            raise CacheEntryError(f"face {i} is a {type(f).__name__}, not an object")
        box, lms = f.get("box"), f.get("landmarks", [])
        if not (isinstance(box, list) and len(box) == 4 and all(_finite_number(v) for v in box)
                and box[0] <= box[2] and box[1] <= box[3]):
            raise CacheEntryError(f"face {i}: box {box!r} is not 4 finite numbers x1 <= x2, y1 <= y2")
        if not _finite_number(f.get("score")):
            raise CacheEntryError(f"face {i}: score {f.get('score')!r} is not a finite number")
        if not (isinstance(lms, list) and all(isinstance(p, list) and len(p) == 2 and all(_finite_number(v) for v in p)
                                              for p in lms)):
            raise CacheEntryError(f"face {i}: landmarks are not [x, y] pairs")
    return faces


class FeatureCache:
    """Detections and embeddings under ``root/features``, checked on read; ``root=None`` disables it.

    Entry file: ``{"format", "kind", "key", "view", "sha256", ...}`` on the first line, the payload after it.
    """

    def __init__(self, root: Path | None) -> None:
        self.root = None if root is None else Path(root) / "features"
        self.write_error: str | None = None  # set by the first failed write; later writes are skipped
        self.rejected = 0  # entries that failed their check (recomputed)

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def _path(self, kind: str, key: str, view: str, suffix: str) -> Path:
        assert self.root is not None
        return self.root / kind / key / view[:2] / f"{view}{suffix}"

    def _write(self, path: Path, data: bytes) -> None:
        """Best effort: the first failure warns once and turns further writes off (reads go on)."""
        if self.write_error is not None:
            return
        try:
            atomic_write_bytes(path, data)
        except OSError as e:
            self.write_error = f"{e.filename or path}: {e.strerror or e}"
            log.warning("cannot write the feature cache (%s); going on without caching new entries: results are "
                        "identical, only slower. Free space or pass a writable --cache-dir.", self.write_error)

    def describe(self, kind: str, key: str, description: Mapping[str, Any]) -> None:
        """Write a human-readable ``key.json`` next to a key's entries (what the hash stands for)."""
        if self.root is None:
            return
        path = self.root / kind / key / "key.json"
        try:
            present = path.exists()
        except OSError:
            present = False
        if not present:
            self._write(path, json.dumps(dict(description), indent=2, sort_keys=True, default=str).encode())

    def _read(self, kind: str, key: str, view: str, suffix: str) -> tuple[dict[str, Any], bytes] | None:
        """(header, payload) of a present entry whose header and checksum match; None when absent or rejected."""
        assert self.root is not None
        path = self._path(kind, key, view, suffix)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("cannot read cache entry %s (%s); recomputing it", path, e.strerror or e)
            return None
        try:
            head, sep, payload = blob.partition(b"\n")
            header = json.loads(head) if sep else None
            if not isinstance(header, dict):
                raise CacheEntryError("no header line")
            expect = {"format": ENTRY_FORMAT, "kind": kind, "key": key, "view": view}
            wrong = [k for k, v in expect.items() if header.get(k) != v]
            if wrong:
                raise CacheEntryError(f"made for another {'/'.join(wrong)}")
            if header.get("sha256") != _sha(payload):
                raise CacheEntryError("checksum mismatch (the bytes changed after writing)")
        except (CacheEntryError, ValueError) as e:
            self._reject(path, e)
            return None
        return header, payload

    def _reject(self, path: Path, why: Exception) -> None:
        self.rejected += 1
        log.warning("cache entry %s failed its check (%s); recomputing and rewriting it", path, why)

    def get_faces(self, det_key: str, view: str) -> list[dict[str, Any]] | None:
        """The checked detections of a view, or None (absent, or failed a check: then recomputed)."""
        if self.root is None:
            return None
        entry = self._read("det", det_key, view, _DET_SUFFIX)
        if entry is None:
            return None
        try:
            return check_faces(json.loads(entry[1]))
        except (CacheEntryError, ValueError) as e:
            self._reject(self._path("det", det_key, view, _DET_SUFFIX), e)
            return None

    def put_faces(self, det_key: str, view: str, faces: Sequence[Mapping[str, Any]]) -> None:
        if self.root is None:
            return
        payload = json.dumps([dict(f) for f in faces], sort_keys=True).encode()
        header = {"format": ENTRY_FORMAT, "kind": "det", "key": det_key, "view": view, "sha256": _sha(payload)}
        self._write(self._path("det", det_key, view, _DET_SUFFIX), json.dumps(header).encode() + b"\n" + payload)

    def get_embeddings(self, m_key: str, view: str, dim: int | None = None) -> np.ndarray | None:
        """The checked float32 embeddings of a view (``dim``: the expected last axis), or None."""
        if self.root is None:
            return None
        entry = self._read("emb", m_key, view, _EMB_SUFFIX)
        if entry is None:
            return None
        header, payload = entry
        try:
            shape = header.get("shape")
            if header.get("dtype") != "float32" or not (isinstance(shape, list) and all(
                    isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
                raise CacheEntryError(f"dtype {header.get('dtype')!r} / shape {shape!r} is not a float32 array")
            if len(payload) != 4 * int(np.prod(shape, dtype=np.int64)):
                raise CacheEntryError(f"{len(payload)} bytes for shape {shape}")
            if dim and (not shape or shape[-1] != dim):
                raise CacheEntryError(f"shape {shape}, expected dimension {dim}")
            arr = np.frombuffer(payload, dtype="<f4").reshape(shape).astype(np.float32)
            if not np.all(np.isfinite(arr)):
                raise CacheEntryError("NaN or inf values")
        except CacheEntryError as e:
            self._reject(self._path("emb", m_key, view, _EMB_SUFFIX), e)
            return None
        return arr

    def put_embeddings(self, m_key: str, view: str, emb: np.ndarray) -> None:
        if self.root is None:
            return
        arr = np.ascontiguousarray(emb, dtype="<f4")
        payload = arr.tobytes()
        header = {"format": ENTRY_FORMAT, "kind": "emb", "key": m_key, "view": view, "shape": list(arr.shape),
                  "dtype": "float32", "sha256": _sha(payload)}
        self._write(self._path("emb", m_key, view, _EMB_SUFFIX), json.dumps(header).encode() + b"\n" + payload)
