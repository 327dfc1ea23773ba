"""The identity-fidelity vs copy-paste trade-off plot (the paper's Figure 5), for paper and measured points.

Axes, labels and directions come from the metric cards: an axis whose metric is lower-is-better is
drawn descending, so "better" is always up and to the right, as in Figure 5. The curve is a
least-squares polynomial fitted over the baselines only (WithAnyone and the oracles are excluded: the
paper's claim is that WithAnyone lies off that curve). The paper does not state the curve's form; the
default degree 2 is our choice and is written into the CSV and the legend.

matplotlib is imported inside :func:`plot_tradeoff` with the Agg backend, so importing this module is cheap.
"""
from __future__ import annotations

import logging
import math
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from multiid_bench.errors import ConfigError
from multiid_bench.leaderboard.paper import PAPER, metric_key, paper_meta, paper_table_for
from multiid_bench.metrics.cards import MetricCard, get_card

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["fit_curve", "pareto_mask", "plot_tradeoff", "tradeoff_points"]

log = logging.getLogger(__name__)


def tradeoff_points(
    df: "pd.DataFrame",
    *,
    subset: str = "p1",
    face_model: str = "average",
    protocol: str = "paper",
    x_metric: str = "sim_gt",
    y_metric: str = "copy_paste",
    paper_table: str | None = None,
    include_limits: bool = False,
) -> "pd.DataFrame":
    """One row per plotted model: x/y values with CI bounds, kind, provenance and a label.

    Rows missing either coordinate are dropped (and logged), never imputed. The oracle "limits" (GT,
    copy-reference) are left out unless ``include_limits``: their copy-paste of +-1 would flatten the plot.
    """
    import pandas as pd

    get_card(x_metric), get_card(y_metric)  # unknown metric ids fail here, with "did you mean"
    if df.empty:
        return pd.DataFrame(columns=["label", "model", "provenance", "kind", "x", "y"])
    present = set(df["metric_key"])

    def key(metric: str) -> str:  # "face_failure_rate" is written per face model by the runner
        k = metric_key(metric, face_model)
        alt = f"{metric}.{face_model}"
        return alt if k not in present and alt in present and "." not in metric else k

    xk, yk = key(x_metric), key(y_metric)
    measured = df[(df["provenance"] != PAPER) & (df["subset"] == subset) & (df["protocol"] == protocol)]
    parts = [measured]
    table_id = paper_table or paper_table_for(subset, face_model)
    if table_id is not None and (df["provenance"] == PAPER).any():
        parts.append(df[(df["provenance"] == PAPER) & (df["table"] == table_id)])
    view = pd.concat(parts, ignore_index=True)
    view = view[view["metric_key"].isin([xk, yk])]
    rows = []
    for (source, display), grp in view.groupby(["source", "display"], sort=False):
        by_key = {r["metric_key"]: r for _, r in grp.iterrows()}
        first = grp.iloc[0]
        if xk not in by_key or yk not in by_key or math.isnan(by_key[xk]["value"]) or math.isnan(by_key[yk]["value"]):
            log.info("%s (%s) has no %s and %s; not plotted", display, source, xk, yk)
            continue
        if first["row_kind"] == "limit" and not include_limits:
            continue
        rx, ry = by_key[xk], by_key[yk]
        is_paper = first["provenance"] == PAPER
        rows.append({
            "label": f"{display} (paper)" if is_paper else (
                str(display) if bool(first["reportable"]) else f"{display} (--limit, not reportable)"),
            "model": first["model"], "provenance": first["provenance"], "kind": first["row_kind"],
            "source": source, "x_key": xk, "y_key": yk,
            "x": float(rx["value"]), "y": float(ry["value"]),
            "x_lo": math.nan if is_paper else float(rx["ci_lo"]), "x_hi": math.nan if is_paper else float(rx["ci_hi"]),
            "y_lo": math.nan if is_paper else float(ry["ci_lo"]), "y_hi": math.nan if is_paper else float(ry["ci_hi"]),
            "n_x": None if is_paper else int(rx["n"]), "n_y": None if is_paper else int(ry["n"]),
            "reportable": True if is_paper else bool(first["reportable"]),
        })
    pts = pd.DataFrame.from_records(rows)
    if pts.empty:
        return pd.DataFrame(columns=["label", "model", "provenance", "kind", "x", "y"])
    dup = pts["label"].duplicated(keep=False)
    pts.loc[dup, "label"] = pts.loc[dup, "label"] + " [" + pts.loc[dup, "source"].map(lambda s: Path(s.split(" ", 1)[-1]).parent.name) + "]"
    return pts


def fit_curve(x: npt.ArrayLike, y: npt.ArrayLike, degree: int = 2) -> npt.NDArray[np.float64] | None:
    """Least-squares polynomial coefficients (highest power first), or ``None`` with too few points.

    The degree drops to what the points support (at least degree + 2 points, so the fit has a residual).
    """
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    deg = min(degree, xa.size - 2)
    if deg < 1 or np.ptp(xa) == 0:
        return None
    return np.polyfit(xa, ya, deg)


def pareto_mask(
    x: npt.ArrayLike, y: npt.ArrayLike, *, x_higher_is_better: bool, y_higher_is_better: bool
) -> npt.NDArray[np.bool_]:
    """True for points no other point beats on both axes (ties on both axes keep both)."""
    xa = np.asarray(x, dtype=np.float64) * (1 if x_higher_is_better else -1)
    ya = np.asarray(y, dtype=np.float64) * (1 if y_higher_is_better else -1)
    keep = np.ones(xa.size, dtype=bool)
    for i in range(xa.size):
        dominated = (xa >= xa[i]) & (ya >= ya[i]) & ((xa > xa[i]) | (ya > ya[i]))
        keep[i] = not dominated.any()
    return keep


def _colour(model: str) -> Any:
    """Stable colour per model: the paper's models get distinct fixed slots, others a hashed slot."""
    import matplotlib

    palette = list(matplotlib.colormaps["tab10"].colors) + list(matplotlib.colormaps["Dark2"].colors)
    known = list(paper_meta()["models"])
    idx = known.index(model) if model in known else zlib.crc32(model.encode())
    return palette[idx % len(palette)]


def annotate_fit(points: "pd.DataFrame", degree: int) -> tuple["pd.DataFrame", npt.NDArray[np.float64] | None, MetricCard, MetricCard]:
    """Add ``in_fit`` and ``on_pareto_front`` flags; return the fit coefficients and the two cards."""
    if points.empty:
        raise ConfigError("nothing to plot: no model has both coordinates in this view (check --subset, --protocol "
                          "and --face-model; pass --include-paper, or --include-limits for oracle-only runs)")
    x_card, y_card = get_card(points["x_key"].iloc[0]), get_card(points["y_key"].iloc[0])
    pts = points.copy()
    baseline = pts["kind"] == "baseline"
    paper_base = baseline & (pts["provenance"] == PAPER)
    pts["in_fit"] = paper_base if paper_base.sum() >= 3 else baseline
    coef = fit_curve(pts.loc[pts["in_fit"], "x"], pts.loc[pts["in_fit"], "y"], degree)
    if coef is None:
        pts["in_fit"] = False
    pts["on_pareto_front"] = pareto_mask(pts["x"], pts["y"], x_higher_is_better=x_card.higher_is_better,
                                         y_higher_is_better=y_card.higher_is_better)
    return pts, coef, x_card, y_card


def plot_tradeoff(points: "pd.DataFrame", out: str | Path, *, title: str = "", degree: int = 2,
                  formats: tuple[str, ...] = ("png", "svg", "csv")) -> list[Path]:
    """Draw the trade-off plot and write ``<out>.png``, ``<out>.svg`` and ``<out>.csv`` (the data behind it).

    Paper points are hollow circles in the model's colour; measured points are filled diamonds with their
    95% CI bars; the dashed curve is the fit over the baselines; red rings and line mark the Pareto front.

    Args:
        points: from :func:`tradeoff_points`.
        out: output path; a ``.png``/``.svg``/``.csv`` suffix is replaced by each format's.
        title: plot title.
        degree: polynomial degree of the fitted curve.
        formats: which of ``png``, ``svg``, ``csv`` to write (the report needs only the PNG).

    Returns:
        The written paths, in ``formats`` order.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import pandas as pd

    pts, coef, x_card, y_card = annotate_fit(points, degree)
    out = Path(out)
    stem = out.with_suffix("") if out.suffix.lower() in (".png", ".svg", ".csv") else out
    stem.parent.mkdir(parents=True, exist_ok=True)

    fig, ax = plt.subplots(figsize=(9.0, 6.5), dpi=110)
    for _, p in pts.iterrows():
        colour = _colour(str(p["model"]))
        if p["provenance"] == PAPER:
            ax.scatter(p["x"], p["y"], s=70, facecolors="white", edgecolors=colour, linewidths=2.0, marker="o", zorder=3)
        else:
            xerr = [[p["x"] - p["x_lo"]], [p["x_hi"] - p["x"]]] if not math.isnan(p["x_lo"]) else None
            yerr = [[p["y"] - p["y_lo"]], [p["y_hi"] - p["y"]]] if not math.isnan(p["y_lo"]) else None
            ax.errorbar(p["x"], p["y"], xerr=xerr, yerr=yerr, fmt="D", ms=8, color=colour, mec="black",
                        mew=0.8, ecolor=colour, elinewidth=1.2, capsize=3, zorder=4)
    fit_rows = []
    if coef is not None:
        xs = np.linspace(pts["x"].min() - 0.01, pts["x"].max() + 0.01, 200)
        ys = np.polyval(coef, xs)
        n_fit = int(pts["in_fit"].sum())
        ax.plot(xs, ys, color="0.35", lw=1.4, ls="--", zorder=1,
                label=f"fit over {n_fit} baselines (degree {len(coef) - 1})")
        fit_rows = [{"label": "fitted curve", "kind": "fitted_curve", "provenance": "derived", "x": float(a), "y": float(b),
                     "note": f"least-squares polynomial, degree {len(coef) - 1}, coefficients {list(map(float, coef))}"}
                    for a, b in zip(xs[::10], ys[::10])]
    front = pts[pts["on_pareto_front"]].sort_values("x")
    if len(front):
        ax.plot(front["x"], front["y"], color="crimson", lw=1.0, alpha=0.7, zorder=2)
        ax.scatter(front["x"], front["y"], s=260, facecolors="none", edgecolors="crimson", linewidths=1.2, zorder=2,
                   label="Pareto front")
    ax.scatter([], [], s=70, facecolors="white", edgecolors="0.3", linewidths=2.0, label="reported in the paper")
    ax.scatter([], [], s=50, marker="D", color="0.3", label="measured (95% CI bars)")
    # axis limits from the points and their CI bars (the fitted curve may not stretch them)
    for axis, lo_col, hi_col, setter in (("x", "x_lo", "x_hi", ax.set_xlim), ("y", "y_lo", "y_hi", ax.set_ylim)):
        vals = np.concatenate([pts[axis].to_numpy(float), pts[lo_col].to_numpy(float), pts[hi_col].to_numpy(float)])
        vals = vals[np.isfinite(vals)]
        pad = max(0.08 * float(np.ptp(vals)), 0.01)
        setter(float(vals.min()) - pad, float(vals.max()) + pad)
    if not y_card.higher_is_better:
        ax.invert_yaxis()
    if not x_card.higher_is_better:
        ax.invert_xaxis()
    ax.set_xlabel(f"{x_card.name} {x_card.arrow}   [{pts['x_key'].iloc[0]}; {x_card.scale}]")
    ax.set_ylabel(f"{y_card.name} {y_card.arrow}   [{pts['y_key'].iloc[0]}]" +
                  ("  (axis descending)" if not y_card.higher_is_better else ""))
    ax.set_title(title or f"{x_card.name} vs {y_card.name}", fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.text(0.99, 0.99, "better ↗", transform=ax.transAxes, ha="right", va="top", fontsize=10, color="0.35")
    ax.legend(loc="lower left", fontsize=8, framealpha=0.9)
    _place_labels(fig, ax, pts)
    fig.tight_layout()
    written = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        if fmt in ("png", "svg"):
            fig.savefig(path)
        elif fmt == "csv":
            table = pd.concat([pts, pd.DataFrame.from_records(fit_rows)], ignore_index=True, sort=False) if fit_rows else pts
            table.to_csv(path, index=False)
        else:
            raise ConfigError(f"plot format must be png, svg or csv; got {fmt!r}")
        written.append(path)
    plt.close(fig)
    return written


def _place_labels(fig: Any, ax: Any, pts: "pd.DataFrame") -> None:
    """Greedy label placement: try a few offsets per point, keep the first that overlaps nothing placed."""
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    # every marker is an obstacle, so a label never sits on top of another model's point
    placed: list[Any] = []
    for px, py in ax.transData.transform(pts[["x", "y"]].to_numpy(dtype=float)):
        placed.append(Bbox.from_extents(px - 7, py - 7, px + 7, py + 7))
    for _, p in pts.iterrows():  # CI bars are obstacles too
        for (x0, y0), (x1, y1) in (((p["x_lo"], p["y"]), (p["x_hi"], p["y"])), ((p["x"], p["y_lo"]), (p["x"], p["y_hi"]))):
            if np.isfinite([x0, y0, x1, y1]).all():
                (a, b), (c, d) = ax.transData.transform([(x0, y0), (x1, y1)])
                placed.append(Bbox.from_extents(min(a, c) - 2, min(b, d) - 2, max(a, c) + 2, max(b, d) + 2))
    offsets = [(8, 0, "left", "center"), (-8, 0, "right", "center"), (6, 7, "left", "bottom"),
               (6, -7, "left", "top"), (-6, 7, "right", "bottom"), (-6, -7, "right", "top"),
               (0, 10, "center", "bottom"), (0, -10, "center", "top"), (14, 16, "left", "bottom"),
               (-14, -16, "right", "top")]
    for _, p in pts.sort_values("x").iterrows():
        text = None
        for dx, dy, ha, va in offsets:
            if text is not None:
                text.remove()
            text = ax.annotate(str(p["label"]), (p["x"], p["y"]), xytext=(dx, dy), textcoords="offset points",
                               ha=ha, va=va, fontsize=7.5, color="0.15" if p["provenance"] != PAPER else "0.35",
                               fontweight="bold" if p["provenance"] != PAPER else "normal", zorder=5,
                               bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75})
            box = text.get_window_extent(renderer).expanded(1.05, 1.15)
            if not any(box.overlaps(b) for b in placed) and ax.bbox.contains(box.x0, box.y0) \
                    and ax.bbox.contains(box.x1, box.y1):
                break
        placed.append(text.get_window_extent(renderer))
