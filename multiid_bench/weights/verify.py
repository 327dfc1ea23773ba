"""Hashing and verification stamps shared by the weight store.

Why stamps: hashing a 24 GB checkpoint on every run is minutes of I/O. A file verified once gets a stamp
(sha256, size, mtime); while size and mtime are unchanged the stamp stands in for the hash. Files in
mbench's cache keep the stamp next to them (``.NAME.verified.json``); files in the Hugging Face cache are
never written to (another tool owns that folder), so their stamps live under ``<MBENCH_HOME>/weights/
.hf-verified/``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["FileStatus", "ResolvedFile", "Stamps", "sha256_file", "verify_file"]

log = logging.getLogger(__name__)
_CHUNK = 1 << 20
_hash_memo: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, streamed; memoised per (path, size, mtime) within the process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_memo:
        h = hashlib.sha256()
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
        _hash_memo[key] = h.hexdigest()
    return _hash_memo[key]


def verify_file(path: str | os.PathLike[str], sha256: str) -> bool:
    """True when the file exists and its sha256 equals ``sha256`` (case-insensitive)."""
    p = Path(path)
    return p.is_file() and sha256_file(p) == sha256.strip().lower()


class Stamps:
    """Verification records: next to mbench-cache files, in ``hf_dir`` for files of the HF cache."""

    def __init__(self, hf_dir: Path) -> None:
        self.hf_dir = hf_dir

    def path(self, file: Path, *, external: bool) -> Path:
        if external:
            key = hashlib.sha256(str(file.resolve()).encode()).hexdigest()[:32]
            return self.hf_dir / f"{key}.json"
        return file.with_name(f".{file.name}.verified.json")

    def read(self, file: Path, *, external: bool = False) -> dict | None:
        try:
            return json.loads(self.path(file, external=external).read_text())
        except (OSError, ValueError):
            return None

    def matches(self, file: Path, expected: str, *, external: bool = False) -> bool:
        """True when a stamp says ``file`` (same size and mtime) hashed to ``expected``."""
        stamp = self.read(file, external=external)
        if not stamp or not expected:
            return False
        st = file.stat()
        return (stamp.get("sha256") == expected and stamp.get("size") == st.st_size
                and stamp.get("mtime_ns") == st.st_mtime_ns)

    def write(self, file: Path, sha: str, trust: str, source: str, *, external: bool = False) -> None:
        st = file.stat()
        data = {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "trust": trust, "source": source,
                "file": str(file)}
        target = self.path(file, external=external)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(data, indent=1))
        except OSError as e:  # read-only location: the verification itself still held
            log.debug("cannot write verification stamp %s: %s", target, e)

    def remove(self, file: Path, *, external: bool = False) -> None:
        self.path(file, external=external).unlink(missing_ok=True)


@dataclass(frozen=True)
class ResolvedFile:
    """A verified local weight file and its provenance (what results record)."""

    weight_id: str
    name: str
    path: Path
    location: str
    sha256: str
    sha256_source: str  # manifest | hub-lfs | hf-cache-etag | git-sha1 | first-use | "" (folders)
    repo: str = ""
    revision: str = ""
    commit: str | None = None
    pinned: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


@dataclass(frozen=True)
class FileStatus:
    """Local state of one weight file: ``ok``, ``unverified`` (no hash known), ``missing`` or ``corrupt``."""

    weight_id: str
    name: str
    path: Path
    state: str
    sha256: str = ""
    detail: str = ""
    location: str = ""
    size: int = 0
    pinned: bool = True
