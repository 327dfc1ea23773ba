"""multiid_bench.leaderboard: paper numbers, results store, tables, trade-off plot, report, compare, correlate.

Names are attached lazily, so ``import multiid_bench.leaderboard`` imports neither pandas nor matplotlib.

Example:
    >>> from multiid_bench.leaderboard import load_paper_results
    >>> df = load_paper_results(["2b"])
    >>> sorted(set(df.provenance))
    ['paper']
"""
from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "build_leaderboard",
    "build_report",
    "combined_frame",
    "comparable_set",
    "compare_runs",
    "correlate",
    "differences",
    "load_cases",
    "load_paper_correlations",
    "load_paper_results",
    "load_results",
    "load_tolerances",
    "paper_meta",
    "plot_tradeoff",
    "read_human_csv",
    "render",
    "results_frame",
    "tradeoff_points",
    "validate",
]

_WHERE = {
    "build_leaderboard": "tables", "build_report": "report", "combined_frame": "store", "compare_runs": "compare",
    "correlate": "correlate", "load_cases": "store", "load_paper_correlations": "paper",
    "load_paper_results": "paper", "load_results": "store", "load_tolerances": "compare", "paper_meta": "paper",
    "plot_tradeoff": "plots", "read_human_csv": "correlate", "render": "render", "results_frame": "store",
    "tradeoff_points": "plots", "validate": "store",
    "comparable_set": "comparability", "differences": "comparability",  # the one comparability rule
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'multiid_bench.leaderboard' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
