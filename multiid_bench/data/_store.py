"""Small file-system helpers shared by the data loaders: cache root, offline switch, safe paths, atomic writes.

Why here and not in each loader: the rules "a path from data never escapes its root" and "a cache entry is
either complete or absent" must be the same for JSONL manifests, hub snapshots, reference crops and the demo.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

__all__ = [
    "PathEscapeError",
    "atomic_write_bytes",
    "atomic_write_text",
    "cache_root",
    "data_cache_dir",
    "is_offline",
    "publish_dir",
    "resolve_inside",
    "sha256_bytes",
    "sha256_files",
    "write_jsonl",
]

_CHUNK = 1 << 20
from multiid_bench._io import atomic_write_bytes, cache_root, is_offline  # noqa: E402  (re-exported)


class PathEscapeError(ValueError):
    """A path taken from data points outside the data root (``..``, an absolute path elsewhere)."""


def data_cache_dir(cache_dir: str | Path | None = None, *parts: str) -> Path:
    """``<cache root>/data/<parts...>``: where materialised benches, crops and the demo live."""
    return cache_root(cache_dir).joinpath("data", *parts)


def resolve_inside(root: Path, value: str | os.PathLike[str]) -> Path:
    """Join ``value`` to ``root`` and refuse results outside ``root``.

    The check is lexical (``..`` and absolute paths are normalised, symlinks are *not* resolved): a user who
    links images into the data folder made that choice; a manifest string like ``../../etc/passwd`` did not.

    Raises:
        PathEscapeError: the normalised path is not under the normalised root.
    """
    text = os.fspath(value)
    if not text or "\x00" in text:
        raise PathEscapeError(f"{text!r} is not a usable path")
    base = os.path.normpath(os.path.abspath(os.fspath(root)))
    joined = os.path.normpath(os.path.join(base, text))
    if os.path.commonpath([base, joined]) != base:
        raise PathEscapeError(f"path {text!r} leaves the data root {base}")
    return Path(joined)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_files(paths: Iterable[Path], *, names_relative_to: Path | None = None) -> str:
    """One digest over several files (name, size and bytes of each, in the given order)."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        name = str(p.relative_to(names_relative_to)) if names_relative_to is not None else p.name
        h.update(name.encode() + b"\0" + str(p.stat().st_size).encode() + b"\0")
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
    return h.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Canonical JSONL (sorted keys, one record a line) so equal content gives equal bytes."""
    lines = [json.dumps(dict(r), sort_keys=True, ensure_ascii=False) for r in records]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def publish_dir(tmp: Path, final: Path) -> Path:
    """Move a fully written temporary folder into place; if another process won the race, keep theirs."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def materialise_into(
    folder: Path, rows: Iterable[Any], convert: Callable[[Any, int], tuple[Mapping[str, Any], Mapping[str, bytes]]],
    invalid: Callable[[Any, int, Exception], Mapping[str, Any]], errors: tuple[type[Exception], ...], *,
    manifest: str, complete: Mapping[str, Any],
) -> bool:
    """Write converted rows (a manifest line each, plus their files) into ``folder`` once, atomically.

    Why one helper: hub snapshots and OmniContext copies are both "decode the rows once, keep the files"; a
    folder is used only when ``complete.json`` exists, so a killed materialisation is redone, never half-read.
    A row whose ``convert`` raises one of ``errors`` becomes an ``invalid.jsonl`` line (``invalid(row, i, e)``).
    Returns False when the folder was already complete.
    """
    if (folder / "complete.json").is_file():
        return False
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        records, bad = [], []
        for index, row in enumerate(rows):
            try:
                record, files = convert(row, index)
            except errors as e:
                bad.append(invalid(row, index, e))
                continue
            for rel, data in files.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(data)
            records.append(record)
        write_jsonl(tmp / manifest, records)
        write_jsonl(tmp / "invalid.jsonl", bad)
        (tmp / "complete.json").write_text(json.dumps({**complete, "rows": len(records) + len(bad)}, sort_keys=True))
        publish_dir(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True
