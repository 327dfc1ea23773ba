"""Content-addressed cache of face detections and face embeddings, on disk.

Why: GT photos and references are the same for every model evaluated on a bench, so their faces are
detected and embedded once, ever. An entry is addressed by what determines its numbers and nothing else:

* detections: (image content sha256 + view, detector id, detector config, preprocessing version);
* embeddings: the detection key plus (face model id, version, weights sha256, alignment template, crop
  size, input convention).

The key never contains a path, a rank, a world size or a batch size, so any run, shard or resumed process
reuses any other's work. Writes are atomic (temporary file + ``os.replace``): concurrent shards may write
the same entry, and a killed process never leaves a half-written one that a later run would trust.
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

__all__ = ["PREPROCESS_VERSION", "FeatureCache", "card_dict", "default_cache_root", "detector_key", "model_key",
           "view_key"]

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


class FeatureCache:
    """Detections (JSON) and embeddings (``.npy``) under ``root/features``; ``root=None`` disables it."""

    def __init__(self, root: Path | None) -> None:
        self.root = None if root is None else Path(root) / "features"

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def _path(self, kind: str, key: str, view: str, suffix: str) -> Path:
        assert self.root is not None
        return self.root / kind / key / view[:2] / f"{view}{suffix}"

    def describe(self, kind: str, key: str, description: Mapping[str, Any]) -> None:
        """Write a human-readable ``key.json`` next to a key's entries (what the hash stands for)."""
        if self.root is None:
            return
        path = self.root / kind / key / "key.json"
        if not path.exists():
            atomic_write_bytes(path, json.dumps(dict(description), indent=2, sort_keys=True, default=str).encode())

    def get_faces(self, det_key: str, view: str) -> list[dict[str, Any]] | None:
        if self.root is None:
            return None
        path = self._path("det", det_key, view, ".json")
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:  # a damaged entry is a miss, not a crash
            log.warning("ignoring unreadable cache entry %s (%s)", path, e)
            return None
        return list(data["faces"])

    def put_faces(self, det_key: str, view: str, faces: Sequence[Mapping[str, Any]]) -> None:
        if self.root is None:
            return
        payload = json.dumps({"faces": [dict(f) for f in faces]}).encode()
        atomic_write_bytes(self._path("det", det_key, view, ".json"), payload)

    def get_embeddings(self, m_key: str, view: str) -> np.ndarray | None:
        if self.root is None:
            return None
        path = self._path("emb", m_key, view, ".npy")
        try:
            return np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("ignoring unreadable cache entry %s (%s)", path, e)
            return None

    def put_embeddings(self, m_key: str, view: str, emb: np.ndarray) -> None:
        if self.root is None:
            return
        import io

        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(emb, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(self._path("emb", m_key, view, ".npy"), buf.getvalue())

