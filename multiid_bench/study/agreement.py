"""Inter-rater agreement: Kendall's W (per trial, averaged) and Krippendorff's alpha (all answers).

Kendall's W is written here (a few lines, no well-kept package ships it); its tie correction is the one
of Kendall & Babington Smith, so ``W = chi2_F / (m (n - 1))`` with Friedman's tie-corrected statistic
(:func:`scipy.stats.friedmanchisquare`), which the tests use as the oracle. Krippendorff's alpha comes
from the ``krippendorff`` package (checked in the tests against Krippendorff's own worked example).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["kendalls_w", "krippendorff_alpha"]


def kendalls_w(ratings: npt.ArrayLike) -> float:
    """Kendall's coefficient of concordance of ``m`` raters over ``n`` objects, with the tie correction.

    Args:
        ratings: ``(m, n)`` scores (higher = better, or ranks; only the order within a row counts).

    ``W = 12 S / (m^2 (n^3 - n) - m sum_j T_j)`` with ``S`` the sum of squared deviations of the objects'
    rank sums from their mean and ``T_j = sum (t^3 - t)`` over the tie groups of rater ``j``. Returns NaN
    when every rater ties everything (no ranking to agree on).

    >>> kendalls_w([[1, 2, 3], [1, 2, 3]])
    1.0
    >>> kendalls_w([[1, 2, 3], [3, 2, 1]])
    0.0
    """
    from scipy.stats import rankdata

    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"kendalls_w needs (raters >= 2, objects >= 2) scores; got shape {x.shape}")
    m, n = x.shape
    ranks = rankdata(x, axis=1)
    sums = ranks.sum(axis=0)
    s = float(((sums - sums.mean()) ** 2).sum())
    ties = 0.0
    for row in x:
        _, counts = np.unique(row, return_counts=True)
        ties += float((counts**3 - counts).sum())
    denom = m**2 * (n**3 - n) - m * ties
    return float("nan") if denom <= 0 else 12.0 * s / denom


def krippendorff_alpha(reliability: Sequence[Sequence[float]] | npt.ArrayLike, level: str = "ordinal") -> float:
    """Krippendorff's alpha of a ``(raters, units)`` matrix with NaN for "not rated" (``krippendorff`` package)."""
    try:
        import krippendorff
    except ImportError as e:
        from multiid_bench.errors import MissingDependencyError

        raise MissingDependencyError("Krippendorff's alpha needs the 'krippendorff' package: "
                                     "pip install 'multiid-bench[study]'") from e
    data = np.asarray(reliability, dtype=np.float64)
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))
