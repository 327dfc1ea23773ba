"""One exception hierarchy for the whole toolkit.

Every error carries the process exit code the CLI uses for it, so the mapping from failure to exit
status is decided where the failure is understood, once. Messages name the file, the case and the fix.
"""
from __future__ import annotations

__all__ = [
    "EXIT_CHECK_FAILED",
    "EXIT_MISSING",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "BadInputError",
    "CheckFailedError",
    "ConfigError",
    "ImageDecodeError",
    "MBenchError",
    "MissingDataError",
    "MissingDependencyError",
    "MissingWeightsError",
    "NotComparableError",
    "PartialResultsError",
]

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # a regression check or comparison failed
EXIT_USAGE = 2  # bad flags, bad config, runs that cannot be compared
EXIT_MISSING = 3  # weights or data are missing (offline, not downloaded)
EXIT_PARTIAL = 4  # the run finished but some cases failed


class MBenchError(Exception):
    """Base class; ``exit_code`` is what ``mbench`` exits with when this escapes a command."""

    exit_code: int = EXIT_CHECK_FAILED


class ConfigError(MBenchError, ValueError):
    """An option, config file or argument combination is invalid."""

    exit_code = EXIT_USAGE


class BadInputError(MBenchError, ValueError):
    """User data (a manifest line, an image, a case) is malformed."""

    exit_code = EXIT_USAGE


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
