"""Exception -> one-line message -> exit code, decided once for every command.

Also the process-level rules every command shares (why here: they are about how ``mbench`` ends, not about
any one command):

* an ``OSError`` (disk full, file too large, read-only folder) is one line naming the path and the cause,
  exit 6 (:data:`~multiid_bench.errors.EXIT_IO`), with the command that resumes;
* Ctrl-C and SIGTERM raise the same :class:`KeyboardInterrupt` at the point the process is at, so the
  runner's ``finally`` blocks (the session record) run for both; a second signal during that cleanup ends
  the process at once with one line and no traceback (rows are fsync'ed and files atomic, so nothing is torn);
* ``SIGXFSZ`` is ignored so a file size limit (``ulimit -f``) is an ``EFBIG`` error, not a silent kill;
* stdout/stderr that cannot encode a character (``PYTHONIOENCODING=ascii``) print a replacement, and a
  closed stdout pipe (``| head -1``) ends the command quietly with 141 (128 + SIGPIPE, as ``yes | head``).
"""
from __future__ import annotations

import os
import shlex
import signal
import sys
import traceback
from typing import Any

import click

from multiid_bench.errors import EXIT_INTERRUPTED, EXIT_USAGE, IOFaultError, MBenchError

__all__ = ["EXIT_BROKEN_PIPE", "exit_with", "finish_output", "install_process_handlers", "resume_hint", "run_with_error_mapping"]

#: A closed stdout pipe: 128 + SIGPIPE, what ``yes | head -1`` reports for ``yes``.
EXIT_BROKEN_PIPE = 141
_RUN_COMMANDS = ("evaluate", "score", "generate")
_signals_seen = 0


def resume_hint(argv: list[str] | None = None) -> str:
    """The command that resumes a run command (rows written so far are kept), or '' for other commands."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in _RUN_COMMANDS:
        return ""
    return f"rerun to resume: mbench {shlex.join(args)}"


def _on_signal(signum: int, frame: Any) -> None:
    """First Ctrl-C/SIGTERM: stop where we are (cleanup runs); second: leave at once, one line, no traceback."""
    global _signals_seen
    _signals_seen += 1
    if _signals_seen == 1:
        raise KeyboardInterrupt(signal.Signals(signum).name)
    try:
        os.write(2, b"second interrupt: stopping now; rows written so far are kept, a rerun resumes\n")
    finally:
        os._exit(EXIT_INTERRUPTED)


def install_process_handlers() -> None:
    """SIGINT/SIGTERM -> one KeyboardInterrupt then a quiet exit; SIGXFSZ ignored; unencodable output replaced."""
    global _signals_seen
    _signals_seen = 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _on_signal)
    if hasattr(signal, "SIGXFSZ"):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="replace")
            except (ValueError, OSError):  # a detached or closed stream: nothing to configure
                pass


def _silence_stdout() -> None:
    """After a closed pipe: point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _stdout_is_devnull() -> bool:
    try:
        here, null = os.fstat(sys.stdout.fileno()), os.stat(os.devnull)
    except (OSError, ValueError, AttributeError):
        return False
    return (here.st_dev, here.st_ino) == (null.st_dev, null.st_ino)


def _echo_err(message: str) -> None:
    try:
        click.echo(message, err=True)
    except (OSError, ValueError):  # stderr itself is gone: nothing left to tell
        pass


def run_with_error_mapping(group: click.Group, argv: list[str] | None, *, debug: bool) -> int:
    """Run ``group``; library errors print their message (traceback only in debug) and set the exit code."""
    hint = resume_hint(argv)
    was_devnull = _stdout_is_devnull()
    try:
        rv = group.main(args=argv, prog_name="mbench", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except (click.Abort, KeyboardInterrupt):
        _echo_err("Interrupted; results written so far are kept" + (f"; {hint}" if hint else "."))
        return EXIT_INTERRUPTED
    except click.ClickException as e:
        e.show()
        return EXIT_USAGE if e.exit_code in (1, 2) else int(e.exit_code)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except SystemExit:
        # click and rich handle EPIPE themselves and exit 1 ("check failed" here): click wraps stdout in its
        # PacifyFlushWrapper, rich points stdout at /dev/null
        if type(sys.stdout).__name__.endswith("PacifyFlushWrapper") or (_stdout_is_devnull() and not was_devnull):
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        raise
    except MBenchError as e:
        if debug:
            traceback.print_exc()
        _echo_err(f"error: {e}" + (f"; {hint}" if hint and isinstance(e, IOFaultError) else ""))
        if not debug and not isinstance(e, IOFaultError):  # an I/O fault is one line: the OS said it all
            _echo_err("(set MBENCH_DEBUG=1 for the full traceback)")
        return e.exit_code
    except OSError as e:  # not a toolkit error: the operating system refused a read or write
        if debug:
            traceback.print_exc()
        fault = IOFaultError.from_os_error(e, "read or write")
        _echo_err(f"error: {fault}" + (f"; {hint}" if hint else ""))
        return fault.exit_code
    # without standalone mode click returns the code of a ``click.exceptions.Exit`` raised in a command
    return rv if isinstance(rv, int) else 0


def finish_output(code: int) -> int:
    """Flush stdout before the interpreter does: a pipe closed after the last write is a quiet 141, not a
    "BrokenPipeError ignored" message at exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (OSError, ValueError):
        pass
    return code


def exit_with(code: int) -> None:
    """Exit from inside a command with a documented code (used for 1 and 4)."""
    sys.exit(code)
