"""Aggregation of per-case values: the official IQR-trimmed mean, plain mean, bootstrap CI, filters.

Pure numpy. ``None`` and NaN entries are "missing", dropped before any statistic, and counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Literal, Mapping, Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "COPY_PASTE_FILTERS",
    "CopyPasteFilter",
    "Summary",
    "bootstrap_ci",
    "clean_values",
    "iqr_summary",
    "plain_mean",
    "summarize",
    "trimmed_mean",
]

Statistic = Literal["trimmed", "mean"]


def clean_values(values: Iterable[float | None]) -> npt.NDArray[np.float64]:
    """Drop ``None`` and NaN; return float64. Missing values are never imputed as 0."""
    kept = [float(v) for v in values if v is not None and not np.isnan(float(v))]
    return np.asarray(kept, dtype=np.float64)


@dataclass(frozen=True)
class Summary:
    """The official ``_compute_statistics`` output (eval-protocol section 6.2) plus counts.

    ``mean`` is the IQR-trimmed mean, or the median of all values when fewer than half survive
    trimming (``fallback=True``, where ``std`` is the IQR and ``min``/``max`` are P5/P95, as upstream).
    """

    n: int
    mean: float
    std: float
    min: float
    max: float
    median: float
    q1: float
    q3: float
    outliers_removed: int
    fallback: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        return dict(self.__dict__)


def iqr_summary(values: Iterable[float | None], k: float = 1.5) -> Summary | None:
    """IQR outlier removal with the < 50 % survivors median fallback; ``None`` for no values.

    Example:
        >>> s = iqr_summary([1.0, 2.0, 3.0, 4.0, 100.0])
        >>> s.mean, s.outliers_removed
        (2.5, 1)
    """
    v = clean_values(values)
    if v.size == 0:
        return None
    q1, q3 = np.percentile(v, [25.0, 75.0])
    iqr = q3 - q1
    kept = v[(v >= q1 - k * iqr) & (v <= q3 + k * iqr)]
    median = float(np.median(v))
    if kept.size < 0.5 * v.size:
        p5, p95 = np.percentile(v, [5.0, 95.0])
        return Summary(
            n=int(v.size), mean=median, std=float(iqr), min=float(p5), max=float(p95), median=median,
            q1=float(q1), q3=float(q3), outliers_removed=int(v.size - kept.size), fallback=True,
        )
    return Summary(
        n=int(v.size), mean=float(kept.mean()), std=float(kept.std()), min=float(kept.min()),
        max=float(kept.max()), median=median, q1=float(q1), q3=float(q3),
        outliers_removed=int(v.size - kept.size), fallback=False,
    )


def trimmed_mean(values: Iterable[float | None], k: float = 1.5) -> float | None:
    """The paper-compatible statistic: IQR(k)-trimmed mean, median fallback; ``None`` when empty.

    Example:
        >>> trimmed_mean([0.5, 0.5, 0.6, 0.4, 9.0])
        0.5
    """
    s = iqr_summary(values, k)
    return None if s is None else s.mean


def plain_mean(values: Iterable[float | None]) -> float | None:
    """Arithmetic mean of the present values; ``None`` when there are none."""
    v = clean_values(values)
    return float(v.mean()) if v.size else None


def bootstrap_ci(
    values: Iterable[float | None],
    *,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    statistic: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]] | None = None,
) -> tuple[float, float] | None:
    """Percentile bootstrap CI of the mean (or of ``statistic`` applied along axis 1).

    Deterministic for a given ``seed``. ``None`` for fewer than 2 values, where no interval exists.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    v = clean_values(values)
    if v.size < 2:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_resamples, v.size))
    samples = v[idx]
    stats = samples.mean(axis=1) if statistic is None else np.asarray(statistic(samples), dtype=np.float64)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def summarize(
    values: Sequence[float | None], *, statistic: Statistic = "trimmed", k: float = 1.5, seed: int = 0
) -> dict[str, object]:
    """Headline value plus n, missing count and a bootstrap CI of the plain mean, ready for JSON."""
    if statistic not in ("trimmed", "mean"):
        raise ValueError(f"statistic must be 'trimmed' or 'mean', got {statistic!r}")
    v = clean_values(values)
    value = trimmed_mean(v, k) if statistic == "trimmed" else plain_mean(v)
    ci = bootstrap_ci(v, seed=seed)
    return {
        "value": value,
        "statistic": statistic,
        "n": int(v.size),
        "missing": int(len(values) - v.size),
        "mean": plain_mean(v),
        "trimmed_mean": trimmed_mean(v, k),
        "ci95": list(ci) if ci is not None else None,
    }


@dataclass(frozen=True)
class CopyPasteFilter:
    """The paper's rule for ranking copy-paste: keep cases whose Sim(GT) is strictly above a threshold.

    Per case, on that face model's per-case Sim(GT) (eval-protocol section 6.5 leaves this open;
    this is our documented choice).
    """

    name: str
    threshold: float
    source: str

    def keep(self, sim_gt: Sequence[float | None]) -> npt.NDArray[np.bool_]:
        return np.array([s is not None and float(s) > self.threshold for s in sim_gt], dtype=bool)

    def apply(self, sim_gt: Sequence[float | None], copy_paste: Sequence[float | None]) -> list[float | None]:
        """Copy-paste values of the kept cases (missing ones stay missing)."""
        if len(sim_gt) != len(copy_paste):
            raise ValueError(f"sim_gt has {len(sim_gt)} cases but copy_paste has {len(copy_paste)}")
        mask = self.keep(sim_gt)
        return [cp for cp, k in zip(copy_paste, mask) if k]


COPY_PASTE_FILTERS: Mapping[str, CopyPasteFilter] = {
    f.name: f
    for f in (
        CopyPasteFilter("paper-single", 0.40, "paper Table 1: single-person, Sim(GT) > 0.40"),
        CopyPasteFilter("paper-multi", 0.35, "paper Table 2: multi-person, Sim(GT) > 0.35"),
        CopyPasteFilter("paper-arcface", 0.35, "paper Table 5: ArcFace, Sim(GT) > 0.35"),
        CopyPasteFilter("paper-adaface", 0.30, "paper Table 5: AdaFace, Sim(GT) > 0.30"),
        CopyPasteFilter("paper-facenet", 0.45, "paper Table 5: FaceNet, Sim(GT) > 0.45"),
    )
}
