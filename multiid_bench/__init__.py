"""multiid-bench: identity fidelity without copy-paste, measured the same way for everyone.

The top level stays light: ``evaluate``, ``score``, ``generate``, ``load_run`` (:mod:`multiid_bench.api`)
are imported on first use, and heavy modules (torch, insightface, open_clip, diffusers) only by the
sub-packages that need them, so ``import multiid_bench`` and ``mbench --help`` stay fast.
"""
from __future__ import annotations

from typing import Any

from multiid_bench._version import __version__
from multiid_bench.metrics.identity import compute_copy_paste

__all__ = ["CaseInput", "Run", "__version__", "compute_copy_paste", "evaluate", "generate", "load_run", "score"]

_API = {"CaseInput", "Run", "evaluate", "generate", "load_run", "score"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from multiid_bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'multiid_bench' has no attribute {name!r}")
