"""Small I/O rules every layer shares: where the cache lives, whether we may download, atomic writes.

Written once here so that one ``--cache-dir`` or ``MBENCH_OFFLINE=1`` means the same thing to the weight
store, the data loaders, the embedding cache and the adapters.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["OFFLINE_ENV_VARS", "atomic_write_bytes", "cache_root", "is_offline"]

_TRUE = {"1", "true", "yes", "on"}
#: Any of these set to 1/true/yes/on forbids network access (ours, and the Hugging Face libraries').
OFFLINE_ENV_VARS = ("MBENCH_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: ``cache_dir`` > ``$MBENCH_HOME`` > ``$XDG_CACHE_HOME/multiid-bench`` > ``~/.cache/...``.

    Never ``/tmp`` or the installed package folder; always relocatable (home is read-only on some clusters).
    """
    if cache_dir:
        return Path(cache_dir).expanduser().resolve()
    if os.environ.get("MBENCH_HOME"):
        return Path(os.environ["MBENCH_HOME"]).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return (Path(xdg).expanduser() / "multiid-bench").resolve()


def is_offline(offline: bool | None = None) -> bool:
    """An explicit flag wins; otherwise any of :data:`OFFLINE_ENV_VARS` set to 1/true/yes/on."""
    if offline is not None:
        return bool(offline)
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in OFFLINE_ENV_VARS)


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (threads may be creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set-and-restore, the only portable way to read it
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write through a temporary file in the same folder and ``os.replace``: a reader never sees half a file.

    The file gets the permissions a plain ``open(path, "w")`` would (0666 minus the umask, so 0644 under
    022): ``mkstemp`` creates 0600, which would hide results and images from colleagues and a shared cache.
    ``fsync=True`` also flushes to disk first (generated images and records, which a crash must not tear).
    An ``OSError`` becomes :class:`~multiid_bench.errors.IOFaultError` naming ``path`` (still an ``OSError``).
    """
    from multiid_bench.errors import IOFaultError

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as e:
        raise IOFaultError.from_os_error(e, "write", path) from e
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # disk full, file too large: one line naming the file (exit 6)
            raise IOFaultError.from_os_error(e, "write", path) from e
        raise
