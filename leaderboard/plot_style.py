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
    import math

    import numpy as np
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    pix = ax.transData.transform(xy) if len(xy) else []
    radii = list(radii_px) if radii_px is not None else [5.0] * len(xy)
    # a margin around every marker: a label right next to another model's point would read as its label
    m = 3.0 * fig.dpi / 72.0
    markers = [Bbox.from_extents(px - r - m, py - r - m, px + r + m, py + r + m) for (px, py), r in zip(pix, radii)]
    # obstacles, the labels placed so far and their leader lines, as an (N, 4) array of x0, y0, x1, y1
    placed = np.array([[b.x0, b.y0, b.x1, b.y1] for b in obstacles], dtype=float).reshape(-1, 4)
    marker_arr = np.array([[b.x0, b.y0, b.x1, b.y1] for b in markers], dtype=float).reshape(-1, 4)

    def overlaps(box: Any, arr: Any) -> Any:
        """Overlap area of ``box`` with every row of ``arr`` (vectorised: thousands of line boxes)."""
        w = np.minimum(arr[:, 2], box.x1) - np.maximum(arr[:, 0], box.x0)
        h = np.minimum(arr[:, 3], box.y1) - np.maximum(arr[:, 1], box.y0)
        return np.where((w > 0) & (h > 0), w * h, 0.0)

    # 16 directions (right, left, above, below first), so a crowded point still finds a free side
    base = [(1, 0, "left", "center"), (-1, 0, "right", "center"), (0, 1, "center", "bottom"),
            (0, -1, "center", "top"), (0.8, 0.8, "left", "bottom"), (-0.8, 0.8, "right", "bottom"),
            (0.8, -0.8, "left", "top"), (-0.8, -0.8, "right", "top"),
            (0.92, 0.38, "left", "bottom"), (-0.92, 0.38, "right", "bottom"), (0.92, -0.38, "left", "top"),
            (-0.92, -0.38, "right", "top"), (0.38, 0.92, "left", "bottom"), (-0.38, 0.92, "right", "bottom"),
            (0.38, -0.92, "left", "top"), (-0.38, -0.92, "right", "top")]
    scale = fontsize / 7.5

    def candidates(i: int) -> list[tuple[float, float, str, str]]:
        ring0 = (radii[i] + m) * 72.0 / fig.dpi + 0.5  # offsets in points; the first ring clears the marker
        rings = (ring0, ring0 + 7 * scale, ring0 + 15 * scale, ring0 + 26 * scale, ring0 + 38 * scale,
                 ring0 + 52 * scale, ring0 + 70 * scale)
        return [(dx * r, dy * r, ha, va) for r in rings for dx, dy, ha, va in base]

    def leader_points(i: int, box: Any) -> Any:
        """Points every 3 px along the leader from the marker's edge to the label (what its line would cover)."""
        px, py = pix[i]
        cx, cy = min(max(px, box.x0), box.x1), min(max(py, box.y0), box.y1)  # nearest point of the label
        length = math.hypot(cx - px, cy - py)
        if length <= radii[i] + 1:
            return np.zeros((0, 2))
        t = np.linspace(0.0, 1.0, int(length / 3) + 1)
        pts = np.stack([px + t * (cx - px), py + t * (cy - py)], axis=1)
        keep = np.hypot(pts[:, 0] - px, pts[:, 1] - py) > radii[i] + 1
        inside = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
        return pts[keep & ~inside]

    def crossings(points: Any, arr: Any) -> int:
        """How many (point, box) pairs touch: a leader point within 1 px of an obstacle box."""
        if not len(points) or not len(arr):
            return 0
        x, y = points[:, 0:1], points[:, 1:2]
        hit = (x + 1 > arr[:, 0]) & (x - 1 < arr[:, 2]) & (y + 1 > arr[:, 1]) & (y - 1 < arr[:, 3])
        return int(hit.sum())

    # the most crowded points choose first (their free sides are fewest), then left to right
    near = 40.0 * fig.dpi / 72.0
    crowd = [sum(1 for j in range(len(xy)) if j != i and math.dist(pix[i], pix[j]) < near) for i in range(len(xy))]
    order = sorted(range(len(xy)), key=lambda i: (-crowd[i], xy[i][0], xy[i][1]))
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
            # every touched obstacle costs at least 150 px^2: text on a thin line reads as badly as text on text
            touched = overlaps(box, placed)
            others = np.delete(marker_arr, i, axis=0)
            cost = (float(touched.sum() + 150.0 * np.count_nonzero(touched)) + (0 if inside else 1e6)
                    + float(overlaps(box, others).sum()))
            if max(abs(dx), abs(dy)) > ring0 + 1:  # it will need a leader: one that crosses a line or label costs
                leader = leader_points(i, box)
                cost += 200.0 * crossings(leader, placed) + 200.0 * crossings(leader, others)
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
            lead = leader_points(i, box)  # later labels keep off this leader
            placed = np.vstack([placed, np.column_stack([lead - 1, lead + 1])])
        placed = np.vstack([placed, [[box.x0, box.y0, box.x1, box.y1]]])
        out[i] = ann
    return out
