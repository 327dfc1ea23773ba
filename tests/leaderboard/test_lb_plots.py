"""The trade-off plot: one point per method, the fitted curve over the baselines, the Pareto front, files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multiid_bench.errors import ConfigError
from multiid_bench.leaderboard.paper import load_paper_results
from multiid_bench.leaderboard.plots import annotate_fit, fit_curve, pareto_mask, plot_tradeoff, tradeoff_points
from multiid_bench.leaderboard.store import combined_frame, load_results


def test_paper_plot_has_one_point_per_method_and_the_fitted_curve(tmp_path) -> None:
    df = combined_frame([], include_paper=True)
    pts = tradeoff_points(df, subset="p1")
    methods = load_paper_results(["1a"])
    methods = set(methods[methods.row_kind != "limit"].display)
    assert len(pts) == len(methods) == 15  # 14 baselines + WithAnyone; GT/Ref limits left out
    assert set(pts.label) == methods  # "(paper)" is said once, in the legend
    assert pts.comparable.all()
    png, svg, csv = plot_tradeoff(pts, tmp_path / "fig5")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and svg.read_text().lstrip().startswith("<?xml")
    table = pd.read_csv(csv)
    points, curve = table[table.kind != "fitted_curve"], table[table.kind == "fitted_curve"]
    assert len(points) == 15 and len(curve) == 20
    assert points.in_fit.sum() == 14 and not bool(points[points.model == "withanyone"].in_fit.iloc[0])
    # the fitted curve is the least-squares quadratic over the 14 baselines
    base = points[points.in_fit]
    coef = np.polyfit(base.x, base.y, 2)
    assert np.allclose(curve.y, np.polyval(coef, curve.x))
    # WithAnyone lies far below (= better than) the baselines' curve: the paper's Figure 5 claim
    wa = points[points.model == "withanyone"].iloc[0]
    assert wa.y < np.polyval(coef, wa.x) - 0.1
    # Pareto front (max Sim(GT), min copy-paste): InstantID (best Sim(GT)) and Qwen (best CP) are on it
    front = set(points[points.on_pareto_front].model)
    assert {"instantid", "qwen-image-edit", "withanyone"} <= front and "dreamo" not in front
    # svg carries every label (text as paths in the paper style; here as text); "(paper)" only in the legend
    text = svg.read_text()
    assert all(m in text for m in ("InstantID", "WithAnyone (Ours)", "reported in the paper"))
    assert "(paper)" not in text


def test_measured_points_carry_ci_and_stay_distinct_from_paper(make_run, tmp_path) -> None:
    # a run on the paper's bench (Hugging Face id) with the paper's profile: comparable with Table 1a
    run = load_results(make_run("m", model="UNO", bench={"id": "WithAnyone/MultiID-Bench", "manifest_sha256": "a" * 64,
                                                          "n_cases": 10}))
    df = combined_frame([run], include_paper=True)
    pts = tradeoff_points(df, subset="p1", protocol="paper")
    strict = tradeoff_points(df, subset="p1", protocol="strict")  # the paper's numbers are not strict-protocol
    assert not strict[strict.provenance == "measured"].comparable.iloc[0]
    uno = strict[strict.model == "uno"]
    assert sorted(uno.provenance) == ["measured", "paper"]  # same model, two visibly different points
    meas = uno[uno.provenance == "measured"].iloc[0]
    assert (meas.x, meas.x_lo, meas.x_hi, meas.y_lo, meas.y_hi) == (0.42, 0.40, 0.44, 0.10, 0.18)
    assert meas.label == "UNO" and uno[uno.provenance == "paper"].label.iloc[0] == "UNO"
    assert bool(pts[pts.provenance == "measured"].comparable.iloc[0])
    files = plot_tradeoff(pts, tmp_path / "p")
    assert [f.suffix for f in files] == [".png", ".svg", ".csv"]


def test_face_model_view_and_nothing_to_plot() -> None:
    df = combined_frame([], include_paper=True)
    pts = tradeoff_points(df, subset="p2", face_model="adaface")
    assert len(pts) == 9 and set(pts.x_key) == {"sim_gt.adaface"}
    with pytest.raises(ConfigError, match="nothing to plot"):
        annotate_fit(tradeoff_points(df, subset="all"), 2)


def test_fit_and_pareto_helpers() -> None:
    assert fit_curve([0.1, 0.2], [1, 2]) is None  # too few points for a residual
    assert np.allclose(fit_curve([0, 1, 2, 3], [1, 3, 5, 7], 2), [0, 2, 1], atol=1e-9)
    m = pareto_mask([0.3, 0.4, 0.5, 0.45], [0.1, 0.2, 0.3, 0.35], x_higher_is_better=True, y_higher_is_better=False)
    assert m.tolist() == [True, True, True, False]


def test_points_not_comparable_do_not_stretch_the_axes(make_run, tmp_path) -> None:
    import copy

    from lb_fixtures import base_results

    far = base_results(model="offline-run", profile={"name": "offline", "entries": []})
    for block in (far["metrics"]["paper"]["p1"],):
        block["sim_gt.average"]["value"], block["copy_paste_ranked.average"]["value"] = 0.95, -0.9
    run = load_results(make_run("far", results=copy.deepcopy(far)))
    df = combined_frame([run], include_paper=True)
    pts = tradeoff_points(df, subset="p1", protocol="paper")
    assert not pts[pts.provenance == "measured"].comparable.iloc[0]
    png, csv = plot_tradeoff(pts, tmp_path / "p.png")
    table = pd.read_csv(csv)
    table = table[table.kind != "fitted_curve"]
    far_row = table[table.provenance == "measured"].iloc[0]
    assert not bool(far_row.drawn) and table[table.provenance == "paper"].drawn.all()
    assert any("left out, outside the comparable points' axes" in n and "offline-run" in n
               for n in pts.attrs["notes"])
    (x_lo, x_hi), (y_lo, y_hi) = pts.attrs["axis_limits"]
    paper = table[table.provenance == "paper"]
    assert x_hi < 0.95 and x_hi <= paper.x_hi.fillna(paper.x).max() + 0.1  # the 0.95 point does not stretch x
    assert y_lo > -0.9


def test_cli_says_which_points_were_left_off_the_axes(make_run, tmp_path) -> None:
    from click.testing import CliRunner
    from lb_fixtures import base_results

    from multiid_bench.cli.main import cli

    far = base_results(model="offline-run", profile={"name": "offline", "entries": []})
    far["metrics"]["paper"]["p1"]["sim_gt.average"]["value"] = 0.95
    run = make_run("far", results=far)
    res = CliRunner().invoke(cli, ["plot-tradeoff", str(run), "--subset", "p1",
                                                   "--out", str(tmp_path / "f.png")])
    assert res.exit_code == 0, res.output
    assert "left out, outside the comparable points' axes (not comparable): offline-run" in res.stderr
