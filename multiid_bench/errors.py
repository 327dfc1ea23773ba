"""One exception hierarchy for the whole toolkit.

Every error carries two decisions, made once where the failure is understood: ``exit_code``, what
``mbench`` exits with when it escapes a command, and ``stops_run``, whether the runner stops (``True``:
a missing weight, a wrong flag) or records one failed case and goes on (``False``: one malformed input).
:func:`stops_run` is the runner's only rule; nothing matches on messages. Messages name the file, the case
and the fix.
"""
from __future__ import annotations

__all__ = [
    "EXIT_CHECK_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_IO",
    "EXIT_JUDGE_UNREACHABLE",
    "EXIT_MISSING",
    "EXIT_NOTHING_EVALUATED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "BadInputError",
    "CaseError",
    "CheckFailedError",
    "ConfigError",
    "IOFaultError",
    "ImageDecodeError",
    "JudgeUnreachableError",
    "MBenchError",
    "MissingDataError",
    "MissingDependencyError",
    "MissingWeightsError",
    "NothingEvaluatedError",
    "NotComparableError",
    "PartialResultsError",
    "run_exit_code",
    "stops_run",
]

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # a regression check or comparison failed
EXIT_USAGE = 2  # bad flags, bad config, runs that cannot be compared
EXIT_MISSING = 3  # weights or data are missing (offline, not downloaded)
EXIT_PARTIAL = 4  # the run finished but some cases failed
EXIT_NOTHING_EVALUATED = 5  # the run finished but no case was scored (all not applicable / none scored)
EXIT_IO = 6  # an I/O fault: disk full, file too big, read-only or unwritable output
EXIT_JUDGE_UNREACHABLE = 7  # the VLM judge server could not be reached at all (the run stopped early)
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGTERM (the shell's 128 + SIGINT)


class MBenchError(Exception):
    """Base class; ``exit_code`` is what ``mbench`` exits with when this escapes a command, ``stops_run``
    whether the runner stops on it (the default) or fails the case in hand and goes on."""

    exit_code: int = EXIT_CHECK_FAILED
    stops_run: bool = True


def stops_run(exc: BaseException) -> bool:
    """The runner's rule for an exception raised while generating or scoring one case.

    A toolkit error says itself (``stops_run``); any other ``Exception`` (an adapter or scorer breaking on
    one input) fails that case only; ``KeyboardInterrupt``/``SystemExit`` stop everything.

    Example:
        >>> stops_run(ImageDecodeError("x.png is truncated")), stops_run(MissingWeightsError("no arcface"))
        (False, True)
        >>> stops_run(RuntimeError("CUDA error on this prompt")), stops_run(KeyboardInterrupt())
        (False, True)
    """
    if isinstance(exc, MBenchError):
        return bool(exc.stops_run)
    return not isinstance(exc, Exception)


class ConfigError(MBenchError, ValueError):
    """An option, config file or argument combination is invalid."""

    exit_code = EXIT_USAGE


class BadInputError(MBenchError, ValueError):
    """User data (a manifest line, an image, a case) is malformed: that case fails, the run goes on."""

    exit_code = EXIT_USAGE
    stops_run = False


class CaseError(MBenchError):
    """One case cannot be generated or scored (an API refusal, a timeout); the run goes on, exit 4."""

    exit_code = EXIT_PARTIAL
    stops_run = False


class ImageDecodeError(BadInputError):
    """An image file is missing, empty, truncated or in a format we refuse."""


class MissingWeightsError(MBenchError, FileNotFoundError):
    """Model weights are not in the cache and cannot be fetched (offline or failed download)."""

    exit_code = EXIT_MISSING


class MissingDataError(MBenchError, FileNotFoundError):
    """A benchmark or data set is not available locally and cannot be fetched."""

    exit_code = EXIT_MISSING


class MissingDependencyError(MBenchError, ImportError):
    """An optional package is not installed; the message names the pip command."""

    exit_code = EXIT_MISSING


class CheckFailedError(MBenchError):
    """A regression check found a metric outside its tolerance."""

    exit_code = EXIT_CHECK_FAILED


class NotComparableError(MBenchError):
    """Two result files were made under different benches, protocols or metric versions."""

    exit_code = EXIT_USAGE


class PartialResultsError(MBenchError):
    """The run completed but some cases failed; the results are written and marked partial."""

    exit_code = EXIT_PARTIAL


class JudgeUnreachableError(MBenchError):
    """The VLM judge's server answered no request at all (connection refused, DNS, timeouts): the run stops
    early with exit 7 instead of writing every remaining case as failed. Cases judged so far are kept;
    resuming the same ``--out`` asks the judge again for every answer it does not have."""

    exit_code = EXIT_JUDGE_UNREACHABLE


class NothingEvaluatedError(MBenchError):
    """A run (or generation) finished without a single scored case: every case was not applicable, or
    none could be scored. Usually a generator that returns ``None`` (a forgotten ``return``)."""

    exit_code = EXIT_NOTHING_EVALUATED


def run_exit_code(counts: "dict[str, int] | None", *, failed_here: int = 0) -> int:
    """The one rule from a run's ``counts`` (``results.json``) to its exit code.

    5 when cases were expected but none was scored (every case not applicable or failed before scoring),
    4 when some case failed (toolkit or generator fault; results written anyway), else 0. A case scored
    with missing faces is a model outcome: it counts as evaluated, never as failed. ``counts=None`` (other
    shards still running) decides on this process's own failures only.

    Example:
        >>> run_exit_code({"expected": 3, "evaluated": 3, "failed": 0})
        0
        >>> run_exit_code({"expected": 3, "evaluated": 2, "failed": 1})
        4
        >>> run_exit_code({"expected": 3, "evaluated": 0, "failed": 0, "not_applicable": 3})
        5
    """
    if counts is None:
        return EXIT_PARTIAL if failed_here else EXIT_OK
    if counts.get("expected", 0) > 0 and not counts.get("evaluated", 0) and not counts.get("pending", 0):
        return EXIT_NOTHING_EVALUATED
    return EXIT_PARTIAL if counts.get("failed", 0) else EXIT_OK


class IOFaultError(MBenchError, OSError):
    """The machine refused a read or write the run needs (disk full, file too large, read-only output).

    Not a bad input and not a failed check: nothing about the data is wrong, the same command succeeds once
    the disk has room or the folder is writable. The message names the path and the cause; ``mbench``
    adds the resume command.
    """

    exit_code = EXIT_IO
    os_errno: int | None = None

    @classmethod
    def from_os_error(cls, err: OSError, action: str = "write", path: object = None) -> "IOFaultError":
        """One line from an ``OSError``: the path, the operation and the operating system's reason (a write
        error carries no file name: ``path`` names it)."""
        import errno
        import os

        if isinstance(err, IOFaultError):
            return err
        where = path if path is not None else (err.filename if err.filename is not None else "a file")
        cause = err.strerror or (os.strerror(err.errno) if err.errno else str(err))
        fix = {errno.ENOSPC: "free space on that disk", errno.EDQUOT: "free space within your quota",
               errno.EFBIG: "raise the file size limit (ulimit -f) or write elsewhere",
               errno.EROFS: "choose a writable --out / --cache-dir",
               errno.EACCES: "fix the permissions or choose another folder",
               errno.EPERM: "fix the permissions or choose another folder"}.get(err.errno or 0, "fix the cause")
        exc = cls(f"cannot {action} {where}: {cause} ({fix})")
        exc.os_errno = err.errno
        return exc
