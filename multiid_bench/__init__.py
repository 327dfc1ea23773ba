"""multiid-bench: identity fidelity without copy-paste, measured the same way for everyone.

The top level stays light: heavy modules (torch, insightface, open_clip, diffusers) are only
imported by the sub-packages that need them, so ``import multiid_bench`` and ``mbench --help``
stay fast.
"""
from __future__ import annotations

from multiid_bench._version import __version__
from multiid_bench.metrics.identity import compute_copy_paste

__all__ = ["__version__", "compute_copy_paste"]
