"""Paired bootstrap confidence intervals of ``new - old`` over the cases two runs share.

Why paired: two runs of the same bench score the same cases, so most of the case-to-case spread is shared
(some prompts are hard for every model). Resampling *cases* and taking both runs' values for each drawn
case cancels that shared spread; resampling the runs independently would not, and would call real
regressions noise. scipy's ``bootstrap(..., paired=True)`` draws one index set for both samples.

The statistic is the plain mean of the per-case differences (not the paper protocol's IQR-trimmed mean
of each run): the interval says whether the runs differ on the shared cases, not what each run's
headline number is. Intervals over fewer than :data:`~.tables.MIN_CI_N` shared cases are not computed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from multiid_bench.leaderboard.cases import case_values  # noqa: F401  (re-exported: compare uses it from here)
from multiid_bench.leaderboard.tables import MIN_CI_N

if TYPE_CHECKING:
    from multiid_bench.leaderboard.store import RunResult

__all__ = ["PairedCI", "case_values", "paired_bootstrap_ci"]


@dataclass(frozen=True)
class PairedCI:
    """Mean of ``new - old`` over ``n`` shared cases and its percentile bootstrap interval (NaN: not computed)."""

    n: int
    mean: float
    lo: float
    hi: float
    note: str = ""

    @property
    def excludes_zero(self) -> bool:
        return not math.isnan(self.lo) and (self.lo > 0 or self.hi < 0)

    def text(self) -> str:
        if math.isnan(self.lo):
            return f"— ({self.note})" if self.note else "—"
        return f"{self.mean:+.4f} [{self.lo:+.4f}, {self.hi:+.4f}] n={self.n}"


def paired_bootstrap_ci(new: Sequence[float], old: Sequence[float], *, confidence: float = 0.95,
                        n_resamples: int = 2000, seed: int = 0) -> PairedCI:
    """Percentile bootstrap CI of ``mean(new - old)`` with cases resampled jointly (scipy, ``paired=True``).

    Example:
        >>> ci = paired_bootstrap_ci([0.5 + i / 100 for i in range(12)], [0.4 + i / 100 for i in range(12)])
        >>> round(ci.mean, 6), round(ci.lo, 6), round(ci.hi, 6)
        (0.1, 0.1, 0.1)
    """
    from scipy.stats import bootstrap

    a, b = np.asarray(new, dtype=np.float64), np.asarray(old, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples need the same length; got {a.shape} and {b.shape}")
    n = int(a.size)
    mean = float(np.mean(a - b)) if n else math.nan
    if n < MIN_CI_N:
        return PairedCI(n, mean, math.nan, math.nan, f"n={n} < {MIN_CI_N} shared cases")

    def stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x - y, axis=axis)

    res = bootstrap((a, b), stat, paired=True, vectorized=True, n_resamples=n_resamples,
                    confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed))
    return PairedCI(n, mean, float(res.confidence_interval.low), float(res.confidence_interval.high))


def run_rows(run: "RunResult") -> list[dict[str, Any]] | None:
    """The run's per-case rows, or ``None`` when it has none (a results file copied without its rows)."""
    from multiid_bench.leaderboard.store import load_cases
    from multiid_bench.errors import MissingDataError

    try:
        return load_cases(run)
    except MissingDataError:
        return None
