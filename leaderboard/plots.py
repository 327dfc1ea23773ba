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
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import numpy.typing as npt

from multiid_bench.errors import ConfigError
from multiid_bench.leaderboard.paper import (
    PAPER,
    PER_FACE_MODEL,
    metric_key,
    normalise_subset,
    paper_meta,
    paper_table_for,
)
from multiid_bench.leaderboard.tables import MIN_CI_N
from multiid_bench.metrics.cards import MetricCard, get_card

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["axis_limits", "fit_curve", "pareto_mask", "plot_tradeoff", "tradeoff_points"]

log = logging.getLogger(__name__)


def tradeoff_points(
    df: "pd.DataFrame",
    *,
    subset: str | None = None,
    face_model: str = "average",
    protocol: str = "paper",
    x_metric: str = "sim_gt",
    y_metric: str | None = None,
    paper_table: str | None = None,
    include_limits: bool = False,
    allow_mixed: bool = False,
) -> "pd.DataFrame":
    """One row per plotted model: x/y values with CI bounds, kind, provenance, a label and comparability.

    Rows missing either coordinate are dropped (and logged), never imputed. The oracle "limits" (GT,
    copy-reference) are left out unless ``include_limits``: their copy-paste of +-1 would flatten the plot.
    ``comparable`` is False (with ``not_ranked_reason``) for a point not comparable with the rest of the
    view (:mod:`.comparability`); such points are drawn greyed, outside the fit and the Pareto front.
    """
    import pandas as pd

    from multiid_bench.leaderboard.comparability import comparable_set, frame_key

    if subset is None:
        subset = str(paper_meta()["tables"][paper_table]["subset"]) if paper_table in paper_meta()["tables"] else "p1"
    table_id = paper_table or paper_table_for(subset, face_model)
    if y_metric is None:  # the paper's CP column: Sim(GT)-filtered (Table 5: per face model thresholds)
        y_metric = "copy_paste_ranked_fm" if table_id == paper_meta()["face_model_table"] else "copy_paste_ranked"
    get_card(x_metric), get_card(y_metric)  # unknown metric ids fail here, with "did you mean"
    empty = pd.DataFrame(columns=["label", "model", "provenance", "kind", "x", "y", "comparable"])
    if df.empty:
        return empty
    present = set(df["metric_key"])

    def key(metric: str) -> str:  # "face_failure_rate" is written per face model by the runner
        k = metric_key(metric, face_model)
        alt = f"{metric}.{face_model}"
        return alt if k not in present and alt in present and "." not in metric else k

    xk, yk = key(x_metric), key(y_metric)
    same_subset = df["subset"].map(normalise_subset) == normalise_subset(subset)
    measured = df[(df["provenance"] != PAPER) & same_subset & (df["protocol"] == protocol)]
    parts = [measured]
    if table_id is not None and (df["provenance"] == PAPER).any():
        parts.append(df[(df["provenance"] == PAPER) & (df["table"] == table_id)])
    view = pd.concat(parts, ignore_index=True)
    view = view[view["metric_key"].isin([xk, yk])]
    rows, firsts, dropped = [], [], []
    for (source, display), grp in view.groupby(["source", "display"], sort=False):
        by_key = {r["metric_key"]: r for _, r in grp.iterrows()}
        first = grp.iloc[0]
        measured = first["provenance"] != PAPER
        if xk not in by_key or yk not in by_key or math.isnan(by_key[xk]["value"]) or math.isnan(by_key[yk]["value"]):
            log.info("%s (%s) has no %s and %s; not plotted", display, source, xk, yk)
            if measured:  # a user's own run never vanishes without a word
                dropped.append(f"{display}: not drawn, it has no {xk} and {yk} on subset {subset}")
            continue
        if first["row_kind"] == "limit" and not include_limits:
            if measured:
                dropped.append(f"{display}: not drawn, an oracle limit (its copy-paste of about +-1 would flatten "
                               "the plot); --include-limits draws it")
            continue
        rx, ry = by_key[xk], by_key[yk]
        is_paper = first["provenance"] == PAPER
        rows.append({
            "label": str(display), "model": first["model"], "provenance": first["provenance"],
            "kind": first["row_kind"], "source": source, "x_key": xk, "y_key": yk,
            "x": float(rx["value"]), "y": float(ry["value"]),
            "x_lo": math.nan if is_paper else float(rx["ci_lo"]), "x_hi": math.nan if is_paper else float(rx["ci_hi"]),
            "y_lo": math.nan if is_paper else float(ry["ci_lo"]), "y_hi": math.nan if is_paper else float(ry["ci_hi"]),
            "n_x": None if is_paper else int(rx["n"]), "n_y": None if is_paper else int(ry["n"]),
            "reportable": True if is_paper else bool(first["reportable"]),
            "subset": subset, "protocol": protocol, "face_model": face_model, "paper_table": table_id,
        })
        firsts.append(first)
    pts = pd.DataFrame.from_records(rows)
    if pts.empty:
        empty.attrs["notes"] = dropped
        return empty
    same = pts["label"].duplicated(keep=False) & (pts["provenance"] != PAPER)
    dup = same & pts.groupby("label")["provenance"].transform(lambda s: (s != PAPER).sum() > 1)
    pts.loc[dup, "label"] = pts.loc[dup, "label"] + " [" + pts.loc[dup, "source"].map(
        lambda s: Path(s.split(" ", 1)[-1]).parent.name) + "]"
    verdict = comparable_set([frame_key(f, label=lab) for f, lab in zip(firsts, pts["label"])], allow_mixed=allow_mixed)
    pts["comparable"] = [ok or not rep for ok, rep in zip(verdict.ranked, pts["reportable"])]
    pts["not_ranked_reason"] = verdict.reasons
    pts.attrs["banners"] = verdict.banners(list(pts["label"]))
    pts.attrs["notes"] = dropped  # measured runs left out of the figure, and why (the CLI prints them)
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
    """Add ``in_fit`` and ``on_pareto_front`` flags; return the fit coefficients and the two cards.

    Both are computed only over points that may be ranked (comparable with the view and reportable).
    """
    if points.empty:
        raise ConfigError("nothing to plot: no model has both coordinates in this view (check --subset, --protocol "
                          "and --face-model; pass --include-paper, or --include-limits for oracle-only runs)")
    x_card, y_card = get_card(points["x_key"].iloc[0]), get_card(points["y_key"].iloc[0])
    pts = points.copy()
    if "comparable" not in pts:
        pts["comparable"] = True
    rankable = pts["comparable"].astype(bool) & pts["reportable"].astype(bool)
    baseline = (pts["kind"] == "baseline") & rankable
    paper_base = baseline & (pts["provenance"] == PAPER)
    pts["in_fit"] = paper_base if paper_base.sum() >= 3 else baseline
    coef = fit_curve(pts.loc[pts["in_fit"], "x"], pts.loc[pts["in_fit"], "y"], degree)
    if coef is None:
        pts["in_fit"] = False
    front = np.zeros(len(pts), dtype=bool)
    idx = np.flatnonzero(rankable.to_numpy())
    if idx.size:
        front[idx] = pareto_mask(pts["x"].to_numpy()[idx], pts["y"].to_numpy()[idx],
                                 x_higher_is_better=x_card.higher_is_better, y_higher_is_better=y_card.higher_is_better)
    pts["on_pareto_front"] = front
    return pts, coef, x_card, y_card


_SUBSET_NAMES = {"p1": "single-person subset", "p2": "2-person subset", "p3": "3-and-4-people subset",
                 "all": "all subsets"}
_FORMATS = ("png", "svg", "pdf", "csv")


def _outputs(out: str | Path, formats: tuple[str, ...] | None) -> tuple[Path, tuple[str, ...]]:
    """``fig.pdf`` -> (fig, (pdf, csv)); ``fig`` -> (fig, (png, svg, csv)); an explicit ``formats`` wins."""
    out = Path(out)
    suffix = out.suffix.lower().lstrip(".")
    stem = out.with_suffix("") if suffix in _FORMATS else out
    if formats is None:
        formats = (suffix, "csv") if suffix in ("png", "svg", "pdf") else ("png", "svg", "csv")
    bad = [f for f in formats if f not in _FORMATS]
    if bad:
        raise ConfigError(f"plot format must be one of {', '.join(_FORMATS)}; got {bad}")
    return stem, tuple(dict.fromkeys(formats))


def _human_label(p: "pd.Series", label_map: Mapping[str, str]) -> str:
    for k in (str(p["label"]), str(p["model"]), str(p.get("display", ""))):
        if k.lower() in label_map:
            return label_map[k.lower()]
    return str(p["label"])


def plot_tradeoff(points: "pd.DataFrame", out: str | Path, *, title: str | None = None, degree: int = 2,
                  formats: tuple[str, ...] | None = None, style: str = "default", width: str | float | None = None,
                  label_map: Mapping[str, str] | None = None) -> list[Path]:
    """Draw the trade-off plot; write the figure(s) and the CSV behind it next to each other.

    Paper points are hollow circles in the model's colour; measured points are filled diamonds with their
    95% CI bars (only over n >= 10 cases); points not comparable with the view are grey and outside the
    fit and the front; the dashed curve is the fit over the baselines; red rings and line mark the Pareto
    front. The legend names only what is drawn; "(paper)" is said there, not on every point.

    Args:
        points: from :func:`tradeoff_points`.
        out: ``fig.pdf`` / ``fig.svg`` (vector) / ``fig.png`` writes that figure and ``fig.csv``; a path
            without one of these suffixes writes ``.png``, ``.svg`` and ``.csv``.
        title: plot title; ``None``: a human one (``default`` style) or none (``paper`` style); ``""``: none.
        degree: polynomial degree of the fitted curve.
        formats: override which of ``png``, ``svg``, ``pdf``, ``csv`` to write (the report needs the PNG).
        style: ``default`` (screen) or ``paper`` (serif, 300 dpi raster, TrueType fonts in PDF).
        width: ``single`` / ``wide`` / ``double`` column or inches (see :data:`.plot_style.WIDTHS`).
        label_map: method renames (:func:`.plot_style.read_label_map`), keys lower-case.

    Returns:
        The written paths, in format order.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.lines import Line2D

    from multiid_bench.leaderboard.plot_style import face_model_name, figure_style, line_obstacles, place_labels

    pts, coef, x_card, y_card = annotate_fit(points, degree)
    stem, formats = _outputs(out, formats)
    stem.parent.mkdir(parents=True, exist_ok=True)
    fs = figure_style(style, width)
    label_map = label_map or {}
    pts["display_label"] = [_human_label(p, label_map) for _, p in pts.iterrows()]
    greyed = ~pts["comparable"].astype(bool)
    # points not comparable with the view never set the axes: outside the comparable points' range they are
    # left out of the figure (kept in the CSV with drawn=False) and named in a note
    limits = axis_limits(pts[~greyed]) if (~greyed).any() else axis_limits(pts)
    off_axes = greyed & ~pts["x"].between(*limits[0]) | greyed & ~pts["y"].between(*limits[1])
    pts["drawn"] = ~off_axes
    points.attrs["axis_limits"] = limits
    off_note = ""
    if off_axes.any():
        off_note = ("left out, outside the comparable points' axes (not comparable): "
                    + "; ".join(f"{lab} ({x_card.name} {x:.3f}, {y_card.name} {y:.3f})" for lab, x, y in
                                zip(pts.loc[off_axes, "display_label"], pts.loc[off_axes, "x"], pts.loc[off_axes, "y"])))
        log.warning("trade-off plot: %s", off_note)
        points.attrs.setdefault("notes", []).append(off_note)
    shown = pts[~off_axes]
    written: list[Path] = []
    with plt.rc_context({**fs.rc, "font.size": fs.font_size}):
        fig, ax = plt.subplots(figsize=(fs.width_in, fs.height_in), dpi=fs.dpi)
        handles: list[Any] = []
        drawn = {"paper": False, "measured": False, "greyed": False, "ci": False}
        for i, p in shown.iterrows():
            colour = "0.72" if greyed[i] else _colour(str(p["model"]))
            if p["provenance"] == PAPER:
                ax.scatter(p["x"], p["y"], s=fs.marker, facecolors="white", edgecolors=colour,
                           linewidths=1.6 if fs.name == "default" else 1.0, marker="o", zorder=3)
                drawn["greyed" if greyed[i] else "paper"] = True
                continue
            ci_x = not math.isnan(p["x_lo"]) and (p["n_x"] is None or p["n_x"] >= MIN_CI_N)
            ci_y = not math.isnan(p["y_lo"]) and (p["n_y"] is None or p["n_y"] >= MIN_CI_N)
            xerr = [[p["x"] - p["x_lo"]], [p["x_hi"] - p["x"]]] if ci_x else None
            yerr = [[p["y"] - p["y_lo"]], [p["y_hi"] - p["y"]]] if ci_y else None
            ax.errorbar(p["x"], p["y"], xerr=xerr, yerr=yerr, fmt="D", ms=math.sqrt(fs.marker) * 0.95, color=colour,
                        mec="0.4" if greyed[i] else "black", mew=0.6, ecolor=colour, elinewidth=0.9, capsize=2,
                        zorder=4)
            drawn["greyed" if greyed[i] else "measured"] = True
            drawn["ci"] = drawn["ci"] or bool(ci_x or ci_y)
        fit_rows = []
        if coef is not None:
            fit_x = pts.loc[pts["in_fit"], "x"]  # the curve spans its own points, not greyed outliers
            xs = np.linspace(fit_x.min() - 0.01, fit_x.max() + 0.01, 200)
            ys = np.polyval(coef, xs)
            n_fit = int(pts["in_fit"].sum())
            fit_label = (f"fit over {n_fit} baselines (degree {len(coef) - 1})" if fs.name == "default"
                         else f"baseline fit ({n_fit}, deg. {len(coef) - 1})")
            (line,) = ax.plot(xs, ys, color="0.35", lw=1.1, ls="--", zorder=1, label=fit_label)
            handles.append(line)
            fit_rows = [{"label": "fitted curve", "kind": "fitted_curve", "provenance": "derived", "x": float(a),
                         "y": float(b), "note": f"least-squares polynomial, degree {len(coef) - 1}, "
                                                f"coefficients {list(map(float, coef))}"}
                        for a, b in zip(xs[::10], ys[::10])]
        front = pts[pts["on_pareto_front"]].sort_values("x")
        if len(front):
            ax.plot(front["x"], front["y"], color="crimson", lw=0.9, alpha=0.7, zorder=2)
            ax.scatter(front["x"], front["y"], s=fs.marker * 3.4, facecolors="none", edgecolors="crimson",
                       linewidths=0.9, zorder=2)
            handles.append(Line2D([], [], color="crimson", lw=0.9, marker="o", mfc="none", ms=7, label="Pareto front"))
        if drawn["paper"]:
            handles.append(Line2D([], [], ls="", marker="o", mfc="white", mec="0.3", mew=1.4, label="reported in the paper"))
        if drawn["measured"]:
            handles.append(Line2D([], [], ls="", marker="D", color="0.3", mec="black",
                                  label="measured" + (" (95% CI bars)" if drawn["ci"] else "")))
        if drawn["greyed"]:
            handles.append(Line2D([], [], ls="", marker="D", color="0.72", mec="0.4", label="not comparable, not ranked"))
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
        if not y_card.higher_is_better:
            ax.invert_yaxis()
        if not x_card.higher_is_better:
            ax.invert_xaxis()
        fm = str(pts["face_model"].iloc[0]) if "face_model" in pts else "average"
        fm_text = f", {face_model_name(fm)}" if fm != "average" else ""  # "Sim(GT), ArcFace ↑"
        ax.set_xlabel(f"{x_card.name}{fm_text if x_card.id in PER_FACE_MODEL else ''} {x_card.arrow}")
        ax.set_ylabel(f"{y_card.name}{fm_text if y_card.id in PER_FACE_MODEL else ''} {y_card.arrow}" +
                      (" (axis reversed)" if not y_card.higher_is_better else ""))
        if title is None and fs.name == "default":
            subset = _SUBSET_NAMES.get(str(pts["subset"].iloc[0]), str(pts["subset"].iloc[0])) if "subset" in pts else ""
            title = f"{x_card.name} vs {y_card.name}" + (f", {subset}" if subset else "")
        if title:
            ax.set_title(title, fontsize=fs.font_size + 1)
        ax.grid(True, alpha=0.3, lw=0.5)
        if fs.name == "paper":
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(nbins=5 if fs.width_in <= 4 else 8))
            ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.text(0.99, 0.99, "better ↗" if has_glyph("↗") else "better ↑→", transform=ax.transAxes, ha="right", va="top", fontsize=fs.label_size + 1,
                color="0.35")
        if handles and fs.name == "paper":  # above the axes: the plot area stays for the points and labels
            ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.01), ncol=2, fontsize=fs.label_size,
                      frameon=False, handlelength=1.4, columnspacing=1.0, borderaxespad=0.2)
        elif handles:
            ax.legend(handles=handles, loc="lower left", fontsize=fs.label_size, framealpha=0.9,
                      handlelength=1.6, borderpad=0.4)
        if fs.name == "default" and greyed.any():
            fig.text(0.01, 0.005, "\n".join([*pts.attrs.get("banners", []), *([off_note] if off_note else [])])[:600],
                     fontsize=6.5, color="0.35", ha="left", va="bottom", wrap=True)
        fig.tight_layout(rect=(0, 0.05 if fs.name == "default" and greyed.any() else 0, 1, 1))
        shown_grey = greyed[~off_axes]
        texts = [f"{lab} (not comparable)" if g else lab for lab, g in zip(shown["display_label"], shown_grey)]
        legend = ax.get_legend()
        obstacles = [legend.get_window_extent(fig.canvas.get_renderer())] if legend is not None else []
        obstacles.append(ax.texts[0].get_window_extent(fig.canvas.get_renderer()))  # "better" hint
        obstacles += _ci_boxes(ax, shown) + line_obstacles(ax)
        marker_r = math.sqrt(fs.marker) / 2 * fig.dpi / 72.0  # scatter size is an area in points^2
        radii = [marker_r * (math.sqrt(3.4) if on else 1.0) + 1 for on in shown["on_pareto_front"]]
        pts.attrs["labels"] = place_labels(
                     fig, ax, list(zip(shown["x"], shown["y"])), texts, obstacles=obstacles, fontsize=fs.label_size,
                     radii_px=radii, colours=["0.55" if g else "0.1" for g in shown_grey],
                     weights=["bold" if (p["provenance"] != PAPER and not greyed[i]) else "normal"
                              for i, p in shown.iterrows()])
        points.attrs["layout"] = label_layout(fig, ax, pts.attrs["labels"])
        for fmt in formats:
            path = stem.with_suffix(f".{fmt}")
            if fmt == "csv":
                table = pts.drop(columns=["display_label"]).assign(display_label=pts["display_label"])
                if fit_rows:
                    table = pd.concat([table, pd.DataFrame.from_records(fit_rows)], ignore_index=True, sort=False)
                table.to_csv(path, index=False)
            else:
                fig.savefig(path, format=fmt, dpi=fs.dpi)
            written.append(path)
        plt.close(fig)
    return written


def has_glyph(char: str) -> bool:
    """Whether the current default font draws ``char`` (serif paper fonts lack ↗: it would print as a box)."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    try:
        font = FT2Font(font_manager.findfont(font_manager.FontProperties()))
    except (OSError, RuntimeError, ValueError):
        return False
    return font.get_char_index(ord(char)) != 0


def label_layout(fig: Any, ax: Any, labels: list[Any]) -> dict[str, Any]:
    """Where things ended up, in display pixels, for checks of the figure (labels vs lines and text):
    ``labels`` (x0, y0, x1, y1) per label, ``leaders`` ((x0, y0), (x1, y1)) per leader line, ``lines`` the
    drawn lines' vertices, ``texts`` the boxes of the other texts (legend, "better" hint)."""
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    boxes, leaders = [], []
    for ann in labels:
        ann.update_positions(renderer)  # lays out the leader too
        b = Text.get_window_extent(ann, renderer)  # the text alone (an Annotation's extent includes its leader)
        boxes.append((b.x0, b.y0, b.x1, b.y1))
        if ann.arrow_patch is not None:
            path = ann.arrow_patch.get_path().transformed(ann.arrow_patch.get_transform())
            verts = path.vertices
            leaders.append((tuple(map(float, verts[0])), tuple(map(float, verts[-1]))))
    lines = [ax.transData.transform(line.get_xydata()).tolist() for line in ax.get_lines()
             if line.get_linestyle() not in ("None", "", " ") and len(line.get_xydata()) >= 2]
    others = [t.get_window_extent(renderer) for t in ax.texts if t not in labels]
    legend = ax.get_legend()
    if legend is not None:
        others.append(legend.get_window_extent(renderer))
    return {"labels": boxes, "leaders": leaders, "lines": lines, "texts": [(b.x0, b.y0, b.x1, b.y1) for b in others],
            "axes": tuple(ax.bbox.extents)}


def axis_limits(pts: "pd.DataFrame") -> tuple[tuple[float, float], tuple[float, float]]:
    """(x, y) axis limits from the points and their CI bars, padded 10% (the fitted curve may not stretch them)."""
    out = []
    for axis, lo_col, hi_col in (("x", "x_lo", "x_hi"), ("y", "y_lo", "y_hi")):
        vals = np.concatenate([pts[axis].to_numpy(float), pts[lo_col].to_numpy(float), pts[hi_col].to_numpy(float)])
        vals = vals[np.isfinite(vals)]
        pad = max(0.10 * float(np.ptp(vals)), 0.01)
        out.append((float(vals.min()) - pad, float(vals.max()) + pad))
    return out[0], out[1]


def _ci_boxes(ax: Any, pts: "pd.DataFrame") -> list[Any]:
    from matplotlib.transforms import Bbox

    boxes = []
    for _, p in pts.iterrows():
        for (x0, y0), (x1, y1) in (((p["x_lo"], p["y"]), (p["x_hi"], p["y"])), ((p["x"], p["y_lo"]), (p["x"], p["y_hi"]))):
            if np.isfinite([x0, y0, x1, y1]).all():
                (a, b), (c, d) = ax.transData.transform([(x0, y0), (x1, y1)])
                boxes.append(Bbox.from_extents(min(a, c) - 2, min(b, d) - 2, max(a, c) + 2, max(b, d) + 2))
    return boxes
