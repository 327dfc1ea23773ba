"""Fetchers for non-Hub sources (GitHub releases, Google Drive, zip members) into mbench's own cache.

Hub files never pass through here: ``multiid_bench.weights.hf`` leaves them in the Hugging Face cache.
Each fetcher writes one source into a ``.partial`` path, streaming.

The store checks size and sha256 afterwards and renames atomically; nothing here touches the final path.
"""
from __future__ import annotations

import shutil
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["ProgressFn", "bind_progress", "fetch_url", "fetch_zip_member"]

#: The store's download progress callback: (weight id, file name, bytes done, total or None). Defined here,
#: at the bottom of ``weights/``, so the fetchers and the store share it without importing each other.
ProgressFn = Callable[[str, str, int, "int | None"], None]

_CHUNK = 1 << 20


def bind_progress(progress: ProgressFn | None, wid: str, name: str) -> Callable[[int, int | None], None] | None:
    """Adapt the store's (id, name, done, total) callback to a fetcher's (done, total)."""
    if progress is None:
        return None
    return lambda done, total: progress(wid, name, done, total)


def fetch_url(url: str, partial: Path, progress: Callable[[int, int | None], None] | None) -> None:
    """Stream ``url`` into ``partial`` (no whole-file buffering)."""
    from multiid_bench._version import __version__

    req = urllib.request.Request(url, headers={"User-Agent": f"multiid-bench/{__version__}"})
    with urllib.request.urlopen(req, timeout=60) as resp, partial.open("wb") as out:  # noqa: S310 - http(s) from manifest
        total = resp.headers.get("Content-Length")
        total_i = int(total) if total and total.isdigit() else None
        done = 0
        for chunk in iter(lambda: resp.read(_CHUNK), b""):
            out.write(chunk)
            done += len(chunk)
            if progress:
                progress(done, total_i)


def fetch_zip_member(url: str, member: str, partial: Path,
                      progress: Callable[[int, int | None], None] | None) -> None:
    """Download a zip archive, then stream one member (exact path or unique base name) to ``partial``."""
    archive = partial.with_name(partial.name + ".zip")
    try:
        fetch_url(url, archive, progress)
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            match = [n for n in names if n == member] or [n for n in names if n.rsplit("/", 1)[-1] == member]
            if len(match) != 1:
                raise ValueError(f"archive has {len(match)} members named {member!r} (of {len(names)})")
            with zf.open(match[0]) as src, partial.open("wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
    finally:
        archive.unlink(missing_ok=True)
