"""Fig. 8 as a bubble chart: methods x criteria, bigger bubble = better (lower) mean rank.

The bubble area grows with ``K + 1 - mean rank`` (K methods), so the best possible method (rank 1 in every
trial) has the largest bubble and the worst (rank K) the smallest visible one; the mean rank is written in
each bubble so the chart can be read without guessing areas.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from multiid_bench.study.criteria import CRITERIA

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["plot_fig8"]


def plot_fig8(methods: "pd.DataFrame", stem: Path, *, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Draw the bubble chart from :func:`multiid_bench.study.results.method_table`'s frame; returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(methods["method"].unique())
    k = len(names)
    crit_ids = [c.id for c in CRITERIA]
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(crit_ids), 1.0 + 0.6 * k), dpi=150)
    for _, row in methods.iterrows():
        x, y = crit_ids.index(row["criterion"]), names.index(row["method"])
        goodness = (k + 1 - row["mean_rank"]) / k  # 1/k (always last) .. 1 (always first)
        ax.scatter(x, y, s=60 + 1400 * goodness**2, alpha=0.55, color="#1f6feb", edgecolor="#123", linewidth=0.6)
        ax.annotate(f"{row['mean_rank']:.2f}", (x, y), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(crit_ids)), [c.name.split(" (")[0] for c in CRITERIA])
    ax.set_yticks(range(k), names)
    ax.set_xlim(-0.6, len(crit_ids) - 0.4)
    ax.set_ylim(-0.7, k - 0.3)
    ax.invert_yaxis()
    ax.set_title("User study: mean rank per criterion (bigger = better)", fontsize=10)
    ax.grid(alpha=0.2)
    fig.tight_layout()
    out = []
    stem.parent.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path)
        out.append(path)
    plt.close(fig)
    return out
