"""Optional third-party packages of the face pipeline, imported on first use with an install hint."""
from __future__ import annotations

import importlib
from types import ModuleType

from multiid_bench.errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, pip_name: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"the face pipeline needs the Python package {pip_name or module!r} ({e}). "
            f"Install it with: pip install {pip_name or module}"
        ) from e
