"""Item 7: every I/O fault is one line with its own exit code and the resume command; Ctrl-C, SIGTERM and a
second Ctrl-C; a torn sessions.jsonl; an ascii console and a closed stdout pipe."""
from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from multiid_bench.errors import EXIT_INTERRUPTED, EXIT_IO, IOFaultError
from multiid_bench.runner.finalize import append_session
from multiid_bench.runner.run_folder import SESSIONS_FILE, read_jsonl
from multiid_bench.runner.shard import Shard
from multiid_bench.runner.extract import WorkCounters

DRIVER = Path(__file__).with_name("reliability_driver.py")


def _start(*args: str, fsize: int | None = None, env: dict[str, str] | None = None,
           **kw: object) -> subprocess.Popen[str]:
    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.Popen([sys.executable, str(DRIVER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=limit, env={**os.environ, **(env or {})}, **kw)  # type: ignore[arg-type]


def _rows(out: Path) -> list[str]:
    return [r["case_id"] for r in read_jsonl(out / "cases.jsonl")]


def test_a_full_disk_is_one_line_exit_6_and_the_resume_completes(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "cache"
    proc = _start("evaluate", str(out), str(cache), fsize=6000)  # run.json fits, the rows file soon does not
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_IO, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "File too large" in errors[0] and str(out) in errors[0] and "rerun to resume: mbench evaluate" in errors[0]
    assert "MBENCH_DEBUG" not in err  # one line: nothing to debug in a full disk
    proc = _start("evaluate", str(out), str(cache))
    stdout, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "complete" in stdout, err
    ids = _rows(out)
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 4  # nothing lost, nothing twice


def _interrupt_after_first_row(sig: signal.Signals, tmp_path: Path) -> tuple[int, str, Path]:
    out = tmp_path / "out"
    proc = _start("evaluate", str(out), str(tmp_path / "cache"), "--sleep-per-row", "30")
    assert proc.stdout is not None
    while not proc.stdout.readline().startswith("row"):
        pass
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err, out


def test_sigterm_runs_the_same_cleanup_as_ctrl_c(tmp_path: Path) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        code, err, out = _interrupt_after_first_row(sig, tmp_path / sig.name)
        assert code == EXIT_INTERRUPTED and "Traceback" not in err
        assert "rerun to resume: mbench evaluate" in err
        sessions = list(read_jsonl(out / SESSIONS_FILE))
        assert len(sessions) == 1 and sessions[0]["rows_written"] == 1  # the session record is kept


def test_a_second_ctrl_c_during_cleanup_never_prints_a_traceback(tmp_path: Path) -> None:
    proc = _start("evaluate", str(tmp_path / "out"), str(tmp_path / "cache"), "--sleep-per-row", "30",
                  "--slow-cleanup", "30")
    assert proc.stdout is not None
    while not proc.stdout.readline().startswith("row"):
        pass
    proc.send_signal(signal.SIGINT)
    time.sleep(1.0)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert time.monotonic() - t0 < 10
    assert proc.returncode == EXIT_INTERRUPTED and "Traceback" not in err and "second interrupt" in err


def test_a_torn_sessions_line_is_repaired_before_the_next_one(tmp_path: Path) -> None:
    path = tmp_path / SESSIONS_FILE
    path.write_text(json.dumps({"shard": "0/1", "rows_written": 3}) + "\n" + '{"shard": "0/1", "rows_wr')
    append_session(tmp_path, Shard(), "2026-01-01T00:00:00Z", 1.0, 2, WorkCounters(), None)
    sessions = list(read_jsonl(path))
    assert [s["rows_written"] for s in sessions] == [3, 2]


def test_an_ascii_console_and_a_closed_pipe_do_not_crash(tmp_path: Path) -> None:
    proc = _start("print", "Sim(GT) — ≥ 0.5 ✓", "3", env={"PYTHONIOENCODING": "ascii"})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "Traceback" not in err and out.count("Sim(GT)") == 3
    proc = _start("print", "a line", "200000")
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    assert proc.wait(timeout=60) == 141
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read() and "Exception ignored" not in err


def test_io_faults_name_the_path_cause_and_fix() -> None:
    for code, words in [(errno.ENOSPC, "free space"), (errno.EROFS, "writable"), (errno.EFBIG, "ulimit")]:
        fault = IOFaultError.from_os_error(OSError(code, os.strerror(code), "/runs/x/cases.jsonl"))
        assert fault.exit_code == EXIT_IO and "/runs/x/cases.jsonl" in str(fault) and words in str(fault)
        assert "\n" not in str(fault)
