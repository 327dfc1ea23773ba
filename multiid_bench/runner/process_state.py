"""Leave the caller's process as it was: what ``mb.evaluate`` / ``score`` / ``generate`` change is put back.

A call may switch the whole process offline (``profile="offline"`` sets ``MBENCH_OFFLINE`` / ``HF_HUB_OFFLINE``
so that every library in the process stays off the network) and libraries imported during the call read those
variables once, into module globals (``huggingface_hub.constants.HF_HUB_OFFLINE``, ``datasets.config``).
Without a restore, a later ``from_pretrained`` in the same notebook fails offline with no reason given.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Any, Callable, Iterator, TypeVar

__all__ = ["preserves_process_state", "restored_process_state"]

F = TypeVar("F", bound=Callable[..., Any])

# module -> attribute that caches an environment variable at import time, and that variable
_CACHED_FLAGS = (
    ("huggingface_hub.constants", "HF_HUB_OFFLINE", "HF_HUB_OFFLINE"),
    ("datasets.config", "HF_HUB_OFFLINE", "HF_HUB_OFFLINE"),
    ("datasets.config", "HF_DATASETS_OFFLINE", "HF_DATASETS_OFFLINE"),
)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


@contextlib.contextmanager
def restored_process_state() -> Iterator[None]:
    """Snapshot ``os.environ`` and the import-time offline flags; put both back on exit (errors included).

    A flag of a module imported during the block is reset to what the restored environment says, so the
    process behaves as if the call had never happened.
    """
    env = dict(os.environ)
    flags = {(mod, attr): getattr(sys.modules[mod], attr) for mod, attr, _ in _CACHED_FLAGS
             if mod in sys.modules and hasattr(sys.modules[mod], attr)}
    try:
        yield
    finally:
        for key in [k for k in os.environ if k not in env]:
            del os.environ[key]
        for key, value in env.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
        for mod, attr, var in _CACHED_FLAGS:
            module = sys.modules.get(mod)
            if module is None or not hasattr(module, attr):
                continue
            setattr(module, attr, flags.get((mod, attr), _truthy(os.environ.get(var))))


def preserves_process_state(fn: F) -> F:
    """Decorator: run ``fn`` inside :func:`restored_process_state`."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with restored_process_state():
            return fn(*args, **kwargs)
    return wrapper  # type: ignore[return-value]
