"""Items 4-5: one writer per run folder (two real processes), a dead holder's lock taken over; a folder is
adopted only if it is ours."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from runner_fakes import FakeWorld, rows_of, run

from multiid_bench.errors import ConfigError
from multiid_bench.runner.folder_lock import FolderLockedError, RunFolderLock

_HOLD = """
import sys, time
from pathlib import Path
from multiid_bench.runner.folder_lock import RunFolderLock
lock = RunFolderLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def _holder(out: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_refuses_at_once_naming_the_holder(world: FakeWorld, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    proc = _holder(out)
    try:
        t0 = time.monotonic()
        with pytest.raises(FolderLockedError) as info:
            run(world, "ground-truth", out, tmp_path / "cache")
        assert time.monotonic() - t0 < 10
        msg = str(info.value)
        assert f"pid {proc.pid}" in msg and socket.gethostname() in msg and "started 20" in msg and "\n" not in msg
        assert not rows_of(out)  # no work was done twice
    finally:
        proc.kill()
        proc.wait()


def test_the_lock_of_a_killed_process_is_taken_over(world: FakeWorld, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    out.mkdir()
    proc = _holder(out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with caplog.at_level(logging.WARNING):
        outcome = run(world, "ground-truth", out, tmp_path / "cache")
    assert outcome.complete and len(rows_of(out)) == 3
    assert f"pid {proc.pid}" in caplog.text and "taking over" in caplog.text


def test_shards_lock_separately_and_the_lock_is_released(tmp_path: Path) -> None:
    with RunFolderLock(tmp_path, "shard-000-of-002"):
        with RunFolderLock(tmp_path, "shard-001-of-002"):
            pass
        with pytest.raises(FolderLockedError):
            RunFolderLock(tmp_path, "shard-000-of-002").acquire()
    with RunFolderLock(tmp_path, "shard-000-of-002"):  # released on exit
        pass


def test_rows_without_run_json_are_not_adopted(world: FakeWorld, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(world, "copy-reference", out, tmp_path / "cache")
    (out / "run.json").unlink()
    rows = (out / "cases.jsonl").read_bytes()
    with pytest.raises(ConfigError, match="--overwrite") as info:
        run(world, "ground-truth", out, tmp_path / "cache")
    assert "no run.json" in str(info.value)
    assert (out / "cases.jsonl").read_bytes() == rows


def test_a_folder_mbench_did_not_write_is_refused_and_left_untouched(world: FakeWorld, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "results.json").write_text('{"my": "thesis numbers"}')
    with pytest.raises(ConfigError, match="not an mbench run folder.*--overwrite"):
        run(world, "ground-truth", out, tmp_path / "cache")
    assert json.loads((out / "results.json").read_text()) == {"my": "thesis numbers"}
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_our_own_folders_are_adopted(world: FakeWorld, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(world, "ground-truth", out, tmp_path / "cache")
    assert run(world, "ground-truth", out, tmp_path / "cache").complete  # a resume
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(world, "ground-truth", empty, tmp_path / "cache").complete


def test_a_file_system_without_locks_warns_and_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    import errno
    import fcntl

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with caplog.at_level(logging.WARNING), RunFolderLock(tmp_path):
        pass
    assert "has no locks" in caplog.text


def test_overwrite_sets_a_foreign_folder_aside_then_it_is_adopted(tmp_path: Path) -> None:
    """--overwrite (run_folder.move_aside) lifts the adoption refusal: what it leaves (replaced-*/, the log)
    is never mistaken for foreign content, and the user's files are moved, not deleted."""
    from multiid_bench.runner.folder_lock import check_adoptable
    from multiid_bench.runner.run_folder import REPLACED_LOG, move_aside

    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text("{\"mine\": true}")
    (out / "notes.txt").write_text("my notes")
    with pytest.raises(ConfigError, match="--overwrite"):
        check_adoptable(out)
    with RunFolderLock(out):  # a lock file of an earlier (finished) run stays where it is
        pass
    target = move_aside(out)
    check_adoptable(out)  # now ours: only the set-aside folder, its log and the lock file remain
    assert (target / "notes.txt").read_text() == "my notes" and (target / "results.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == sorted([".mbench-lock", REPLACED_LOG, target.name])


def test_overwrite_never_sets_aside_a_folder_another_process_writes(tmp_path: Path) -> None:
    from multiid_bench.runner.folder_lock import ensure_no_writer

    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text("{}")
    proc = _holder(out)
    try:
        with pytest.raises(FolderLockedError, match=f"pid {proc.pid}"):
            ensure_no_writer(out)
    finally:
        proc.kill()
        proc.wait()
    ensure_no_writer(out)  # the holder is gone: free again
    assert (out / "run.json").is_file()
