"""Figure styles, human labels and a small label-repel routine for the trade-off plot.

Kept apart from :mod:`.plots` (which decides *what* is drawn) because these decide *how it reads*: a
paper figure needs serif-compatible fonts, a known width in inches, 300 dpi raster output and embedded
(TrueType) fonts; every figure needs labels that do not sit on each other or on other points.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from multiid_bench.errors import ConfigError

__all__ = ["STYLES", "WIDTHS", "FigureStyle", "face_model_name", "figure_style", "line_obstacles", "place_labels",
           "read_label_map"]

#: Column widths in inches: a two-column paper's single column (ICLR/NeurIPS-style one column is ~5.5 in).
WIDTHS = {"single": 3.5, "wide": 5.5, "double": 7.0}
STYLES = ("default", "paper")
_FACE_MODELS = {"arcface": "ArcFace", "adaface": "AdaFace", "facenet": "FaceNet", "dlib": "dlib",
                "facenet_mtcnn": "FaceNet (MTCNN)", "average": "mean over face models"}


@dataclass(frozen=True)
class FigureStyle:
    name: str
    width_in: float
    height_in: float
    dpi: int
    font_size: float
    label_size: float
    marker: float
    rc: Mapping[str, Any]


def figure_style(name: str = "default", width: str | float | None = None) -> FigureStyle:
    """``default`` (screen: 9 x 6.5 in, 110 dpi) or ``paper`` (serif, 300 dpi, TrueType fonts in PDF).

    Args:
        name: ``default`` or ``paper``.
        width: ``single`` (3.5 in), ``wide`` (5.5 in), ``double`` (7 in) or inches; ``None``: the style's own.
    """
    if name not in STYLES:
        raise ConfigError(f"--style must be one of {', '.join(STYLES)}; got {name!r}")
    if isinstance(width, str) and width not in WIDTHS:
        try:
            width = float(width)
        except ValueError:
            raise ConfigError(f"--width must be one of {', '.join(WIDTHS)} or a width in inches; got {width!r}") from None
    w = WIDTHS[width] if isinstance(width, str) else width
    if name == "paper":
        w = w or WIDTHS["single"]
        small = w <= 4.0
        return FigureStyle(
            name="paper", width_in=w, height_in=w * (0.9 if small else 0.62), dpi=300,
            font_size=8.0 if small else 9.0, label_size=5.5 if small else 7.0, marker=18.0 if small else 30.0,
            rc={"font.family": "serif",
                # Times-compatible first (the look of most paper templates), DejaVu Serif always exists
                "font.serif": ["Times New Roman", "Times", "Nimbus Roman", "Nimbus Roman No9 L", "TeX Gyre Termes",
                               "Liberation Serif", "DejaVu Serif"],
                "mathtext.fontset": "stix", "pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "path",
                "axes.linewidth": 0.6, "xtick.major.width": 0.6, "ytick.major.width": 0.6,
                "lines.linewidth": 1.0, "legend.frameon": True, "savefig.bbox": "tight", "savefig.pad_inches": 0.02},
        )
    w = w or 9.0
    return FigureStyle(name="default", width_in=w, height_in=w * 0.72, dpi=110, font_size=10.0, label_size=7.5,
                       marker=70.0, rc={"pdf.fonttype": 42, "savefig.bbox": "tight"})


def face_model_name(face_model: str) -> str:
    return _FACE_MODELS.get(face_model, face_model)


def read_label_map(path: str | Path) -> dict[str, str]:
    """Method renames from a JSON object ``{"uno": "UNO (ours, v2)"}`` or a two-column CSV ``name,label``.

    Keys may be a model id, a paper label or a run's model name (matched case-insensitively).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"--label-map {p}: cannot read it ({e})") from e
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--label-map {p} is not JSON ({e}); expected an object {{\"name\": \"label\"}}") from e
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ConfigError(f"--label-map {p}: expected a JSON object of strings {{\"name\": \"label\"}}")
        return {str(k).lower(): v for k, v in data.items()}
    rows = [r for r in csv.reader(text.splitlines()) if r and not r[0].startswith("#")]
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["name", "label"]:
        rows = rows[1:]
    bad = [i for i, r in enumerate(rows, 1) if len(r) != 2]
    if bad:
        raise ConfigError(f"--label-map {p}: row(s) {bad} do not have exactly two columns 'name,label' "
                          "(or give a .json object)")
    return {r[0].strip().lower(): r[1].strip() for r in rows}


def line_obstacles(ax: Any, step_px: float = 3.0, half: float = 1.5) -> list[Any]:
    """Small boxes along every line drawn in ``ax`` (fitted curve, Pareto line), so labels avoid crossing them."""
    import numpy as np
    from matplotlib.transforms import Bbox

    boxes = []
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        if len(xy) < 2 or line.get_linestyle() in ("None", "", " "):
            continue
        pix = ax.transData.transform(xy)
        for (x0, y0), (x1, y1) in zip(pix[:-1], pix[1:]):
            n = max(1, int(np.hypot(x1 - x0, y1 - y0) / step_px))
            for t in np.linspace(0, 1, n + 1):
                x, y = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
                if ax.bbox.contains(x, y):
                    boxes.append(Bbox.from_extents(x - half, y - half, x + half, y + half))
    return boxes


def place_labels(fig: Any, ax: Any, xy: Sequence[tuple[float, float]], texts: Sequence[str], *,
                 obstacles: Sequence[Any] = (), fontsize: float = 7.5, colours: Sequence[Any] | None = None,
                 weights: Sequence[str] | None = None, radii_px: Sequence[float] | None = None) -> list[Any]:
    """Place one label per point so that no label overlaps another label, a marker or an obstacle.

    A small repel routine: candidate offsets on rings of growing radius around the point (right, left,
    above, below, then the diagonals); the first free one inside the axes wins. When none is free, the
    candidate with the least overlap is kept and joined to its point by a thin leader line.
    Returns the placed ``Annotation`` objects (their window extents are the boxes the test checks).
    """
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    pix = ax.transData.transform(xy) if len(xy) else []
    radii = list(radii_px) if radii_px is not None else [5.0] * len(xy)
    # a margin around every marker: a label right next to another model's point would read as its label
    m = 3.0 * fig.dpi / 72.0
    markers = [Bbox.from_extents(px - r - m, py - r - m, px + r + m, py + r + m) for (px, py), r in zip(pix, radii)]
    placed: list[Any] = list(obstacles)  # obstacles and the labels placed so far
    base = [(1, 0, "left", "center"), (-1, 0, "right", "center"), (0, 1, "center", "bottom"),
            (0, -1, "center", "top"), (0.8, 0.8, "left", "bottom"), (-0.8, 0.8, "right", "bottom"),
            (0.8, -0.8, "left", "top"), (-0.8, -0.8, "right", "top")]
    scale = fontsize / 7.5

    def candidates(i: int) -> list[tuple[float, float, str, str]]:
        ring0 = (radii[i] + m) * 72.0 / fig.dpi + 0.5  # offsets in points; the first ring clears the marker
        return [(dx * r, dy * r, ha, va) for r in (ring0, ring0 + 7 * scale, ring0 + 15 * scale, ring0 + 26 * scale)
                for dx, dy, ha, va in base]

    order = sorted(range(len(xy)), key=lambda i: (xy[i][0], xy[i][1]))
    out: list[Any] = [None] * len(xy)
    for i in order:
        best, best_cost = None, None
        ring0 = (radii[i] + m) * 72.0 / fig.dpi + 0.5
        for dx, dy, ha, va in candidates(i):
            ann = ax.annotate(texts[i], xy[i], xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                              fontsize=fontsize, color=colours[i] if colours else "0.15",
                              fontweight=weights[i] if weights else "normal", zorder=6)
            box = ann.get_window_extent(renderer).expanded(1.04, 1.10)
            inside = ax.bbox.contains(box.x0, box.y0) and ax.bbox.contains(box.x1, box.y1)
            cost = (sum(_overlap(box, b) for b in placed) + (0 if inside else 1e6)
                    + sum(_overlap(box, b) for j, b in enumerate(markers) if j != i))
            if best_cost is None or cost < best_cost:
                if best is not None:
                    best[0].remove()
                best, best_cost = (ann, box, dx, dy), cost
            else:
                ann.remove()
            if cost == 0:
                break
        assert best is not None
        ann, box, dx, dy = best
        if max(abs(dx), abs(dy)) > ring0 + 1 or best_cost:
            ann.remove()  # far from its point: draw again with a leader line
            ann = ax.annotate(texts[i], xy[i], xytext=(dx, dy), textcoords="offset points", ha=ann.get_ha(),
                              va=ann.get_va(), fontsize=fontsize, color=colours[i] if colours else "0.15",
                              fontweight=weights[i] if weights else "normal", zorder=6,
                              arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.45", "shrinkA": 1,
                                          "shrinkB": radii[i] * 72.0 / fig.dpi})
        placed.append(box)
        out[i] = ann
    return out


def _overlap(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0
