"""One writer per run folder (and shard): an exclusive ``fcntl`` lock, and the rule for adopting a folder.

Why: two processes on one ``--out`` both see the same cases as pending and do all the work twice; with a
non-deterministic generator some rows then describe an image that is not the one stored. The lock is an
``flock`` on ``<out>/.mbench-lock[.shard-i-of-n]``: the kernel drops it when its process dies (also on
SIGKILL), so a lock left by a dead process is taken over by the next run, safely, with a note naming the
former holder. Shards of one run take different lock files, so a sharded run still writes in parallel.

The lock file holds its holder (pid, host, start time) for the refusal message; the lock is the ``flock``,
never the file's presence.

Adoption (:func:`check_adoptable`): ``--out`` is used only when it is empty, an mbench run folder
(``run.json``) or a folder holding nothing but ``mbench generate`` output (``generate.json``,
``generations*.jsonl``, ``images/``); dotfiles are ignored. A folder with rows but no
``run.json``, or with files mbench did not write, is refused (exit 2) instead of mixing or overwriting.
"""
from __future__ import annotations

import json
import logging
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from multiid_bench.errors import ConfigError
from multiid_bench.runner.provenance import utc_now
from multiid_bench.runner.run_folder import LOCK_STEM, RUN_LOG, is_set_aside

__all__ = ["FolderLockedError", "RunFolderLock", "check_adoptable", "ensure_no_writer", "lock_path", "shard_label"]

log = logging.getLogger(__name__)

_LOCK_STEM = LOCK_STEM  # the run folder's file names have one owner (run_folder)


class FolderLockedError(ConfigError):
    """Another live process holds the run folder (exit 2: choose another --out or wait for it)."""


def lock_path(out: Path, shard_label: str = "") -> Path:
    """The lock file of a folder, one per shard (``shard_label`` like ``shard-000-of-004``; '' unsharded)."""
    return Path(out) / (f"{_LOCK_STEM}.{shard_label}" if shard_label else _LOCK_STEM)


def shard_label(shard: Any) -> str:
    """'' for an unsharded run, else ``shard-III-of-NNN`` (the shard's row-file infix)."""
    if shard is None or shard.count <= 1:
        return ""
    from multiid_bench.runner.run_folder import rows_file

    return rows_file(Path("."), shard).stem.partition(".")[2]


def _holder_text(info: dict[str, Any]) -> str:
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started {info.get('started', '?')}"


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunFolderLock:
    """``with RunFolderLock(out): ...`` holds the folder (or shard) exclusively; refuses at once if held."""

    def __init__(self, out: Path, shard_label: str = "", *, what: str = "run") -> None:
        self.path = lock_path(out, shard_label)
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_holder(fd)
            os.close(fd)
            raise FolderLockedError(
                f"{self.path.parent} is in use by another mbench {self.what} ({_holder_text(holder)}); wait for it "
                f"to finish, stop it, or choose another --out") from None
        except OSError as e:
            os.close(fd)
            import errno

            if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):  # a file system without locks
                log.warning("cannot lock %s (%s): this file system has no locks; make sure only one process "
                            "writes to this folder", self.path, e.strerror or e)
                return
            raise
        previous = self._read_holder(fd)
        if previous and previous.get("pid") != os.getpid():
            here = previous.get("host") == socket.gethostname()
            state = "no longer running" if here and not _pid_alive(previous.get("pid")) else "its lock was released"
            log.warning("taking over %s left by %s (%s)", self.path, _holder_text(previous), state)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": utc_now(), "what": self.what}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd

    @staticmethod
    def _read_holder(fd: int) -> dict[str, Any]:
        try:
            data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def release(self) -> None:
        """Unlock; the file stays (removing it would race with a process that just opened it)."""
        if self._fd is None:
            return
        import fcntl

        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunFolderLock":
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def ensure_no_writer(out: Path, *, what: str = "overwrite") -> None:
    """Refuse when any process (any shard) holds ``out``: ``--overwrite`` must never pull a live run's files
    away. Each lock file is taken and released at once; a held one raises :class:`FolderLockedError`."""
    out = Path(out)
    if not out.is_dir():
        return
    for path in sorted(out.glob(f"{_LOCK_STEM}*")):
        lock = RunFolderLock(out, path.name[len(_LOCK_STEM) + 1:], what=what)
        lock.acquire()
        lock.release()


def check_adoptable(out: Path) -> None:
    """Refuse an ``--out`` that is not ours: rows without ``run.json``, or files mbench did not write.

    Raises:
        ConfigError: naming the folder, what is wrong and the fix (another --out, or ``--overwrite`` which
            moves the old content aside).
    """
    out = Path(out)
    if not out.is_dir():
        return
    # dotfiles, what --overwrite set aside and the user-bug log are not content that decides adoption
    names = [p.name for p in out.iterdir() if not (p.name.startswith(".") or is_set_aside(p.name) or p.name == RUN_LOG)]
    if not names or (out / "run.json").is_file():
        return
    fix = "choose another --out, or pass --overwrite (which moves the old content aside)"
    rows = sorted(n for n in names if n.startswith("cases") and n.endswith(".jsonl"))
    if rows:
        raise ConfigError(f"{out} holds case rows ({rows[0]}) but no run.json, so nothing says which model, bench "
                          f"or settings made them; {fix}")
    generated = [n for n in names if n == "generate.json" or (n.startswith("generations") and n.endswith(".jsonl"))]
    foreign = sorted(n for n in names if n not in generated and not (n == "images" and generated))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ConfigError(f"{out} is not an mbench run folder (no run.json; it holds {shown}); {fix}")
