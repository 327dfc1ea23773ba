"""MultiID-2M training records: reading (webdataset tars, folders, JSONL), validating and writing.

Record format (spec §4.4), one sample = three members sharing a key:

* ``<key>.jpg`` — the (pre-cropped) image;
* ``<key>.json`` — ``caption_en``, ``bboxes`` (faces), optional ``crop`` ``[x1, y1, x2, y2]`` subtracted from the
  npy boxes, identity names in ``names`` / ``name`` (else the words of ``keyword``; ``"none"`` = unidentified),
  optional ``landmarks`` (N, 5, 2) in image coordinates (ours; the released data has none);
* ``<key>.npy`` — a pickled dict with ``bboxes`` (pre-crop coords) and ``embeddings`` (or ``embedding``):
  (N, 512) raw antelopev2 ArcFace embeddings aligned with ``bboxes``; optional ``landmarks``; optional
  ``siglip`` (N, T, C) SigLIP ``last_hidden_state`` of each face's square crop (ours, for SigLIP-branch runs).

Tars are indexed once (member offsets) and read by random access, so sampling is a pure function of
(seed, position) and a run resumes exactly. The npy pickle is read with a restricted unpickler that only
accepts numpy arrays and plain containers, so a hostile shard cannot execute code.
A folder of ``<key>.{jpg,json,npy}`` triplets or a JSONL file (one record per line: the json fields plus
``image`` — a path relative to the file — and ``embeddings`` inline or ``npy`` a path) carries the same fields.
Every defect raises :class:`RecordError` with a short ``reason`` that the trainer counts.
"""
from __future__ import annotations

import io
import json
import logging
import pickle
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from multiid_bench.errors import MissingDataError

__all__ = ["Record", "RecordError", "RecordSource", "open_source", "read_npy_payload", "write_shard", "UNKNOWN_NAMES"]

logger = logging.getLogger(__name__)

UNKNOWN_NAMES = frozenset({"", "none", "unknown"})
_MEMBERS = ("jpg", "json", "npy")
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
}


class RecordError(Exception):
    """A record that cannot be used; ``reason`` is the counter key (e.g. ``"decode_error"``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Record:
    """One decoded training image with its faces, all in the image's pixel frame.

    ``boxes`` (N, 4) float32 x1y1x2y2, ``embeddings`` (N, 512) float32 raw, ``names`` one per face,
    ``landmarks`` (N, 5, 2) float32 or None when the record stores none; ``siglip`` (N, T, C) float32 or None.
    """

    key: str
    source: str
    image: np.ndarray
    caption: str
    boxes: np.ndarray
    embeddings: np.ndarray
    names: tuple[str, ...]
    landmarks: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    siglip: np.ndarray | None = None  # (N, T, C) precomputed SigLIP features of the face crops (optional)


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a record's npy")


def read_npy_payload(data: bytes) -> Any:
    """Decode ``.npy`` bytes; object arrays (the pickled dict of MultiID-2M) go through a restricted unpickler."""
    f = io.BytesIO(data)
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    if not dtype.hasobject:
        f.seek(0)
        return np.load(f, allow_pickle=False)
    obj = _SafeUnpickler(f).load()
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        return obj.item()
    return obj


def _names_from(meta: dict[str, Any]) -> list[str]:
    names = meta.get("names", meta.get("name"))
    if isinstance(names, str):
        names = [names]
    if names is None:
        names = str(meta.get("keyword", "")).split()
    return [str(n) for n in names]


def parse_record(key: str, members: dict[str, bytes], source: str) -> Record:
    """Validate and decode one record's members (``jpg``/``json``/``npy`` bytes, or a JSONL dict under ``json``)."""
    for ext in _MEMBERS:
        if ext not in members:
            raise RecordError("missing_member", f"{source}: record {key!r} has no .{ext} member")
    try:
        meta = members["json"] if isinstance(members["json"], dict) else json.loads(members["json"])
        if not isinstance(meta, dict):
            raise ValueError("top level is not an object")
    except ValueError as exc:
        raise RecordError("bad_json", f"{source}: record {key!r}: unreadable json ({exc})") from exc
    try:
        payload = members["npy"] if isinstance(members["npy"], dict) else read_npy_payload(members["npy"])
        if not isinstance(payload, dict):
            raise ValueError(f"expected a dict, found {type(payload).__name__}")
        emb = payload.get("embeddings", payload.get("embedding"))
        emb = np.asarray(emb, np.float32)
        emb = emb.reshape(1, -1) if emb.ndim == 1 else emb
        npy_boxes = np.asarray(payload.get("bboxes", meta.get("bboxes", [])), np.float32).reshape(-1, 4)
    except (ValueError, TypeError, pickle.UnpicklingError, EOFError) as exc:
        raise RecordError("bad_npy", f"{source}: record {key!r}: unreadable npy ({exc})") from exc
    json_boxes = meta.get("bboxes")
    n_json = len(json_boxes) if isinstance(json_boxes, list) else len(npy_boxes)
    if emb.ndim != 2 or len(emb) != len(npy_boxes) or n_json != len(npy_boxes):
        raise RecordError("boxes_embeddings_mismatch",
                          f"{source}: record {key!r}: {len(npy_boxes)} npy boxes, {n_json} json boxes and "
                          f"{len(emb) if emb.ndim == 2 else emb.shape} embeddings should agree")
    crop = meta.get("crop")
    boxes = npy_boxes.copy()
    if crop is not None:
        boxes[:, [0, 2]] -= float(crop[0])
        boxes[:, [1, 3]] -= float(crop[1])
    lms = payload.get("landmarks", meta.get("landmarks"))
    landmarks = None
    if lms is not None:
        landmarks = np.asarray(lms, np.float32).reshape(-1, 5, 2)
        if len(landmarks) != len(boxes):
            raise RecordError("boxes_embeddings_mismatch",
                              f"{source}: record {key!r}: {len(landmarks)} landmark sets for {len(boxes)} boxes")
        if crop is not None and "landmarks" in payload:
            landmarks = landmarks - np.asarray(crop[:2], np.float32)
    siglip = payload.get("siglip")
    if siglip is not None:
        try:
            siglip = np.asarray(siglip, np.float32)
        except (ValueError, TypeError) as exc:
            raise RecordError("bad_npy", f"{source}: record {key!r}: unreadable SigLIP features ({exc})") from exc
        if siglip.ndim != 3 or len(siglip) != len(boxes):
            raise RecordError("boxes_embeddings_mismatch", f"{source}: record {key!r}: SigLIP features "
                              f"{siglip.shape} should be (N, T, C) with N = {len(boxes)} faces")
    try:
        from PIL import Image

        with Image.open(io.BytesIO(members["jpg"])) as im:
            image = np.asarray(im.convert("RGB"))
    except Exception as exc:  # PIL raises many types for corrupt data
        raise RecordError("decode_error", f"{source}: record {key!r}: image does not decode ({exc})") from exc
    names = _names_from(meta)[: len(boxes)]
    names += [f"person_{k}" for k in range(len(names), len(boxes))]
    return Record(key, source, image, str(meta.get("caption_en", meta.get("caption", ""))), boxes, emb,
                  tuple(names), landmarks, {k: meta[k] for k in ("url",) if k in meta}, siglip)


class RecordSource:
    """Random access to the records of one data path (a folder of tars, one tar, a triplet folder, a JSONL).

    ``len(source)`` counts indexed keys; ``source.read(i)`` returns a :class:`Record` or raises RecordError.
    ``index_errors`` lists shard-level problems (e.g. a truncated tar) found while indexing.
    """

    def __init__(self, entries: list[tuple[str, str, dict[str, Any]]], root: Path,
                 index_errors: list[tuple[str, str]]) -> None:
        self._entries = entries  # (key, source file, {ext: (offset, size) | path | inline})
        self.root = root
        self.index_errors = index_errors

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, i: int) -> str:
        return self._entries[i][0]

    def read(self, i: int) -> Record:
        key, src, members = self._entries[i]
        raw: dict[str, Any] = {}
        for ext, loc in members.items():
            if isinstance(loc, tuple):
                with open(src, "rb") as fh:
                    fh.seek(loc[0])
                    raw[ext] = fh.read(loc[1])
                    if len(raw[ext]) != loc[1]:
                        raise RecordError("corrupt_tar", f"{src}: member {key}.{ext} is truncated")
            elif isinstance(loc, Path):
                try:
                    raw[ext] = loc.read_bytes()
                except OSError as exc:
                    raise RecordError("missing_member", f"{loc}: {exc}") from exc
            else:
                raw[ext] = loc
        return parse_record(key, raw, src)


def _index_tar(path: Path, entries: list, errors: list) -> None:
    groups: dict[str, dict[str, tuple[int, int]]] = {}
    try:
        with tarfile.open(path, "r:") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                base = m.name.rsplit("/", 1)[-1]
                stem, _, ext = base.partition(".")
                prefix = m.name[: len(m.name) - len(base)]
                if ext in _MEMBERS:
                    groups.setdefault(prefix + stem, {})[ext] = (m.offset_data, m.size)
            if path.stat().st_size - tf.offset < 1024:  # no end-of-archive blocks: cut at a member boundary
                raise tarfile.ReadError("no end-of-archive marker (truncated at a member boundary)")
    except (tarfile.TarError, OSError, EOFError) as exc:
        errors.append(("corrupt_tar", f"{path}: {exc}; kept the {len(groups)} records indexed before it"))
        logger.warning("tar %s is damaged (%s); using the records before the damage", path, exc)
    size = path.stat().st_size
    for key in sorted(groups):
        if any(off + n > size for off, n in groups[key].values()):  # tarfile stops quietly at a cut member
            errors.append(("corrupt_tar", f"{path}: member {key} runs past the end of the file (truncated tar)"))
            continue
        entries.append((key, str(path), groups[key]))


def open_source(path: str | Path) -> RecordSource:
    """Index a data path. Raises MissingDataError when it does not exist or holds no records."""
    root = Path(path).expanduser()
    if not root.exists():
        raise MissingDataError(f"training data {root} does not exist; download MultiID-2M (train_rec/*.tar) or "
                               "point data.paths at your own shards")
    entries: list[tuple[str, str, dict[str, Any]]] = []
    errors: list[tuple[str, str]] = []
    if root.is_file() and root.suffix == ".tar":
        _index_tar(root, entries, errors)
    elif root.is_file() and root.suffix in {".jsonl", ".json"}:
        for n, line in enumerate(root.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                members = {"json": row, "jpg": root.parent / row["image"]}
                members["npy"] = root.parent / row["npy"] if "npy" in row else {
                    k: row[k] for k in ("embeddings", "bboxes", "landmarks", "siglip") if k in row}
                entries.append((str(row.get("key", f"line{n}")), f"{root}:{n}", members))
            except (ValueError, KeyError) as exc:
                errors.append(("bad_json", f"{root} line {n}: {exc}"))
    elif root.is_dir():
        for tar in sorted(root.rglob("*.tar")):
            _index_tar(tar, entries, errors)
        groups: dict[str, dict[str, Path]] = {}
        for f in sorted(root.rglob("*")):
            stem, _, ext = f.name.partition(".")
            if f.is_file() and ext in _MEMBERS:
                groups.setdefault(str(f.parent / stem), {})[ext] = f
        for key, members in sorted(groups.items()):
            entries.append((str(Path(key).relative_to(root)), str(root), members))
    if not entries:
        raise MissingDataError(f"{root}: no training records found (expected *.tar shards, <key>.jpg/.json/.npy "
                               "triplets or a .jsonl file)")
    return RecordSource(entries, root, errors)


def _encode_npy(payload: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array(payload, dtype=object), allow_pickle=True)
    return buf.getvalue()


def write_shard(path: str | Path, records: Iterable[tuple[str, Any, dict[str, Any], dict[str, Any]]]) -> Path:
    """Write a webdataset tar in the MultiID-2M layout.

    Each item is ``(key, image, json_meta, npy_payload)`` with ``image`` a uint8 (H, W, 3) array or encoded
    JPEG bytes; the npy payload is stored as the pickled dict the released loader expects.
    """
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tf:
        for key, image, meta, payload in records:
            if isinstance(image, np.ndarray):
                buf = io.BytesIO()
                Image.fromarray(image).save(buf, format="JPEG", quality=95)
                image = buf.getvalue()
            for ext, data in (("jpg", image), ("json", json.dumps(meta).encode()), ("npy", _encode_npy(payload))):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def concat_sources(sources: Sequence[RecordSource]) -> list[tuple[RecordSource, int]]:
    """Flat (source, index) list over several sources (used by the bank builder)."""
    return [(s, i) for s in sources for i in range(len(s))]
