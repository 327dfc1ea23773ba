"""multiid-bench: identity fidelity without copy-paste, measured the same way for everyone.

The top level stays light: every public name below is imported on first use (``__getattr__``), and heavy
modules (numpy, scipy, torch, insightface, open_clip, diffusers) only by the sub-packages that need them, so
``import multiid_bench`` and ``mbench --help`` stay fast. ``dir(multiid_bench)`` lists the public API.
"""
from __future__ import annotations

import importlib

from multiid_bench._version import __version__

#: public name -> the module that defines it (imported on first access)
_LAZY = {
    "CaseInput": "multiid_bench.api",
    "Run": "multiid_bench.api",
    "evaluate": "multiid_bench.api",
    "generate": "multiid_bench.api",
    "load_run": "multiid_bench.api",
    "score": "multiid_bench.api",
    "IdentityScore": "multiid_bench.identity_score",
    "score_images": "multiid_bench.identity_score",
    "compute_copy_paste": "multiid_bench.metrics.identity",
}

__all__ = ["CaseInput", "IdentityScore", "Run", "__version__", "compute_copy_paste", "evaluate", "generate",
           "load_run", "score", "score_images"]  # _LAZY's names and __version__


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'multiid_bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    """The public API (what ``__all__`` lists) plus the sub-packages already imported; no helper names."""
    imported = [k for k, v in globals().items() if not k.startswith("_") and type(v).__name__ == "module"
                and k != "importlib"]
    return sorted({*__all__, *imported})
