"""A paper-ready trade-off figure: output by suffix, paper style, human labels, a legend of what is drawn,
labels that do not overlap, and the CSV next to the figure."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from lb_fixtures import base_results, write_run
from matplotlib.transforms import Bbox

from multiid_bench.cli.main import main
from multiid_bench.errors import ConfigError
from multiid_bench.leaderboard.plot_style import figure_style, place_labels, read_label_map
from multiid_bench.leaderboard.plots import tradeoff_points
from multiid_bench.leaderboard.store import combined_frame

PAPER_BENCH = {"id": "WithAnyone/MultiID-Bench", "manifest_sha256": "a" * 64, "n_cases": 10}


def _run(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out + out.err


def test_out_suffix_picks_the_format_and_keeps_the_csv(tmp_path, capsys) -> None:
    code, out = _run(["plot-tradeoff", "--out", str(tmp_path / "fig.pdf")], capsys)
    assert code == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["fig.csv", "fig.pdf"]
    pdf = (tmp_path / "fig.pdf").read_bytes()
    assert pdf[:5] == b"%PDF-" and b"/Subtype /Image" not in pdf  # vector: no raster image inside
    _run(["plot-tradeoff", "--out", str(tmp_path / "v" / "fig.svg")], capsys)
    svg = (tmp_path / "v" / "fig.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<image" not in svg and (tmp_path / "v" / "fig.csv").is_file()
    _run(["plot-tradeoff", "--out", str(tmp_path / "n" / "fig")], capsys)  # no suffix: png, svg and csv
    assert sorted(p.name for p in (tmp_path / "n").iterdir()) == ["fig.csv", "fig.png", "fig.svg"]


def test_paper_style_single_column_is_300_dpi(tmp_path, capsys) -> None:
    from PIL import Image

    code, _ = _run(["plot-tradeoff", "--style", "paper", "--width", "single", "--out", str(tmp_path / "f.png")], capsys)
    with Image.open(tmp_path / "f.png") as im:
        dpi, width = im.info["dpi"], im.size[0]
    assert code == 0 and round(dpi[0]) == 300
    assert 0.85 * 3.5 * 300 < width < 1.15 * 3.5 * 300  # a single column, give or take the tight bounding box
    st = figure_style("paper", "single")
    assert st.rc["font.family"] == "serif" and st.rc["font.serif"][0] == "Times New Roman" and st.rc["pdf.fonttype"] == 42
    assert figure_style("paper", "2.5").width_in == 2.5
    with pytest.raises(ConfigError, match="--width"):
        figure_style("paper", "narrow")


def test_human_labels_legend_of_drawn_series_and_label_map(tmp_path, capsys) -> None:
    _run(["plot-tradeoff", "--out", str(tmp_path / "a.svg")], capsys)
    svg = (tmp_path / "a.svg").read_text()
    for internal in ("sim_gt", "copy_paste", "(paper)", ".average"):
        assert internal not in svg, internal  # no metric ids; "(paper)" only as the legend's words
    assert "Sim(GT) ↑" in svg and "Copy-Paste (Sim(GT)-filtered) ↓ (axis reversed)" in svg and "reported in the paper" in svg
    assert "measured" not in svg and "not comparable" not in svg  # nothing measured drawn: not in the legend
    run = write_run(tmp_path / "run", base_results(model="mine", bench=PAPER_BENCH))
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"mine": "Mine (v2)", "instantid": "InstantID*"}))
    _run(["plot-tradeoff", str(run), "--label-map", str(names), "--out", str(tmp_path / "b.svg")], capsys)
    svg = (tmp_path / "b.svg").read_text()
    assert "Mine (v2)" in svg and "InstantID*" in svg and "measured" in svg
    csv = pd.read_csv(tmp_path / "b.csv")
    assert set(csv.loc[csv.model == "instantid", "display_label"]) == {"InstantID*"}
    table = tmp_path / "names.csv"
    table.write_text("name,label\nWithAnyone (Ours),WithAnyone\n")
    assert read_label_map(table) == {"withanyone (ours)": "WithAnyone"}
    table.write_text("a,b,c\n")
    with pytest.raises(ConfigError, match="two columns"):
        read_label_map(table)


def _boxes_overlap(a, b) -> bool:
    return min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.y1, b.y1) > max(a.y0, b.y0)


@pytest.mark.parametrize("style,width", [("default", None), ("paper", "single")])
def test_labels_do_not_overlap_each_other_or_other_points(style, width) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.transforms import Bbox

    pts = tradeoff_points(combined_frame([], include_paper=True), subset="p1")
    fs = figure_style(style, width)
    with plt.rc_context({**fs.rc, "font.size": fs.font_size}):
        fig, ax = plt.subplots(figsize=(fs.width_in, fs.height_in), dpi=fs.dpi)
        ax.scatter(pts.x, pts.y, s=fs.marker)
        ax.set_xlim(pts.x.min() - 0.02, pts.x.max() + 0.02)
        ax.set_ylim(pts.y.max() + 0.03, pts.y.min() - 0.03)
        fig.tight_layout()
        anns = place_labels(fig, ax, list(zip(pts.x, pts.y)), list(pts.label), fontsize=fs.label_size)
        r = fig.canvas.get_renderer()
        boxes = [a.get_window_extent(r) for a in anns]
        pix = ax.transData.transform(list(zip(pts.x, pts.y)))
        plt.close(fig)
    assert len(boxes) == 15
    for a, b in itertools.combinations(boxes, 2):
        assert not _boxes_overlap(a, b), (a, b)
    for i, box in enumerate(boxes):
        for j, (px, py) in enumerate(pix):
            if i != j:  # a label never covers another model's point
                assert not _boxes_overlap(box, Bbox.from_extents(px - 3, py - 3, px + 3, py + 3)), (pts.label[i], j)


def test_face_model_view_names_the_face_model_in_words(tmp_path, capsys) -> None:
    code, _ = _run(["plot-tradeoff", "--subset", "p2", "--face-model", "arcface", "--out", str(tmp_path / "f.svg")],
                   capsys)
    svg = (tmp_path / "f.svg").read_text()
    assert code == 0 and "Sim(GT), ArcFace ↑" in svg and "Copy-Paste (ranked, per face model), ArcFace ↓" in svg
    assert "arcface" not in svg and "2-person subset" in svg
    csv = pd.read_csv(tmp_path / "f.csv")
    assert set(csv.dropna(subset=["y_key"]).y_key) == {"copy_paste_ranked_fm.arcface"}  # Table 5's CP column


@pytest.mark.parametrize("subset,style,width", [("p1", "paper", "single"), ("p2", "paper", "single"),
                                                ("p1", "default", None)])
def test_camera_ready_labels_stay_off_lines_text_and_each_other(subset, style, width, tmp_path, recwarn) -> None:
    """The drawn figure (fit curve, Pareto line, legend, "better" hint): no label text touches any of them."""
    from multiid_bench.leaderboard.plots import plot_tradeoff

    pts = tradeoff_points(combined_frame([], include_paper=True), subset=subset)
    plot_tradeoff(pts, tmp_path / "f.png", style=style, width=width)
    layout = pts.attrs["layout"]
    boxes = [Bbox.from_extents(*b) for b in layout["labels"]]
    assert len(boxes) == len(pts) and layout["lines"]
    for a, b in itertools.combinations(boxes, 2):  # text extents include line spacing: 1 px of it may touch
        assert not _boxes_overlap(a.expanded(1, 1).padded(-1), b.padded(-1)), (a, b)
    for box in boxes:
        for t in layout["texts"]:
            assert not _boxes_overlap(box, Bbox.from_extents(*t)), (box, t)
        for line in layout["lines"]:
            for (x0, y0), (x1, y1) in zip(line[:-1], line[1:]):
                for k in np.linspace(0, 1, 25):
                    assert not box.contains(x0 + k * (x1 - x0), y0 + k * (y1 - y0)), "a label sits on a drawn line"
    # a leader line may meet a drawn line only where that line runs through its own marker (a point on the curve)
    near_marker = 4.0 * figure_style(style, width).dpi / 72.0
    for (p, q) in layout["leaders"]:
        for line in layout["lines"]:
            for a, b in zip(line[:-1], line[1:]):
                hit = _crossing(p, q, a, b)
                assert hit is None or np.hypot(q[0] - hit[0], q[1] - hit[1]) < near_marker, (p, q, hit)
    assert not [w for w in recwarn if "missing from font" in str(w.message)], "a glyph prints as a box"


def _crossing(p, q, a, b):
    """Where segment p-q crosses segment a-b (None when it does not)."""
    (px, py), (qx, qy), (ax, ay), (bx, by) = p, q, a, b
    d1x, d1y, d2x, d2y = qx - px, qy - py, bx - ax, by - ay
    den = d1x * d2y - d1y * d2x
    if abs(den) < 1e-12:
        return None
    t = ((ax - px) * d2y - (ay - py) * d2x) / den
    u = ((ax - px) * d1y - (ay - py) * d1x) / den
    return (px + t * d1x, py + t * d1y) if 0 < t < 1 and 0 < u < 1 else None
