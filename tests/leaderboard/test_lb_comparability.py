"""Comparability is a property of a row: only mutually comparable rows are ranked, in all four commands.

The measured run here is the committed golden output of ``mbench evaluate --model dummy --bench demo
--profile offline`` (tests/golden/demo_dummy_offline/results.json): the dummy compositor scores Sim(GT)
~0.985 on the dlib scale, which must never be crowned above the paper's ArcFace-scale 0.464.
"""
from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from lb_fixtures import base_results, write_run

from multiid_bench.cli.main import main
from multiid_bench.leaderboard.comparability import RowKey, comparable_set, differences
from multiid_bench.leaderboard.store import combined_frame, load_results
from multiid_bench.leaderboard.tables import build_leaderboard

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "demo_dummy_offline" / "results.json"
# The golden run's manifest hash moves whenever the demo bench is rebuilt: read it, don't copy it.
GOLDEN_HASH = json.loads(GOLDEN.read_text())["bench"]["manifest_sha256"][:8]
_P1 = json.loads(GOLDEN.read_text())["metrics"]["paper"]["p1"]["sim_gt.average"]
SIM_GT, SIM_GT_N = f"{_P1['value']:.3f}", _P1["n"]  # the dummy's measured Sim(GT) on p1
WHY = f"bench demo@{GOLDEN_HASH} vs MultiID-Bench; profile offline vs paper; face models dlib vs adaface, arcface, facenet"
PAPER_BENCH = {"id": "WithAnyone/MultiID-Bench", "manifest_sha256": "a" * 64, "n_cases": 10}


@pytest.fixture
def dummy_run(tmp_path: Path) -> Path:
    (tmp_path / "dummy").mkdir()
    shutil.copy(GOLDEN, tmp_path / "dummy" / "results.json")
    return tmp_path / "dummy"


def _run(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out + out.err


# ------------------------------------------------------------------------------------------- the one rule

def test_differences_names_every_field_and_skips_unstated_ones() -> None:
    a = RowKey("A", bench="demo", manifest_sha256="1" * 64, subset="p1", protocol="paper", profile="paper",
               face_models=("arcface",), metric_versions=(("sim_gt", "1.0.0"),), reportable=True)
    assert differences(a, a) == []
    b = RowKey("B", bench="other", manifest_sha256="2" * 64, subset="p2", protocol="strict", profile="offline",
               face_models=("dlib",), metric_versions=(("sim_gt", "2.0.0"),), reportable=False)
    assert differences(a, b) == [
        "bench demo@11111111 vs other@22222222", "subset p1 vs p2", "protocol paper vs strict",
        "profile paper vs offline", "face models arcface vs dlib", "metric sim_gt version 1.0.0 vs 2.0.0",
        "full run vs --limit run (not reportable)"]
    assert differences(a, b, ignore=("bench", "subset", "protocol", "profile", "face_models", "metric_versions",
                                     "reportable")) == []
    # the paper states no manifest hash and no card versions: those are not checked against it
    paper = RowKey("the paper", bench="demo", subset="p1", protocol="paper", profile="paper", is_paper=True)
    assert differences(a, paper) == []
    # same id, different manifest: not the same bench
    assert differences(a, RowKey("C", bench="demo", manifest_sha256="3" * 64)) == [
        "bench demo@11111111 vs demo@33333333"]
    with pytest.raises(ValueError, match="unknown comparability field"):
        differences(a, b, ignore=("colour",))


def test_comparable_set_paper_anchors_then_first_run_greedy_and_allow_mixed() -> None:
    paper = RowKey("the paper's Table 1a", bench="MultiID-Bench", subset="p1", protocol="paper", profile="paper",
                   is_paper=True)
    good = RowKey("good", bench="MultiID-Bench", manifest_sha256="a" * 64, subset="p1", protocol="paper",
                  profile="paper")
    offline = RowKey("dummy", bench="demo", subset="p1", protocol="paper", profile="offline")
    smoke = RowKey("smoke", bench="MultiID-Bench", subset="p1", protocol="paper", profile="paper", reportable=False)
    v = comparable_set([offline, good, paper, smoke])
    assert v.ranked == [False, True, True, False]
    assert v.reasons[0] == ("not comparable with the paper's Table 1a (bench demo vs MultiID-Bench; profile offline "
                            "vs paper); --allow-mixed ranks it anyway")
    assert v.anchor == paper and "never ranked" in v.reasons[3]
    # between measured runs alone, the first reportable run anchors
    v2 = comparable_set([offline, good])
    assert v2.ranked == [True, False] and v2.reasons[1].startswith("not comparable with dummy (bench MultiID-Bench")
    mixed = comparable_set([offline, good, paper, smoke], allow_mixed=True)
    assert mixed.ranked == [True, True, True, False]  # --limit runs are never ranked, even mixed
    assert mixed.warnings == ["--allow-mixed: dummy is ranked although not comparable with the paper's Table 1a "
                              "(bench demo vs MultiID-Bench; profile offline vs paper)"]


# ------------------------------------------------------------------------------------- the four commands

def test_leaderboard_offline_run_with_paper_has_no_rank_marks_and_says_why(dummy_run, capsys) -> None:
    code, out = _run(["leaderboard", str(dummy_run), "--include-paper", "--format", "markdown"], capsys)
    assert code == 0
    assert f"> ⚠ dummy: not ranked, not comparable with the paper's Table 1a ({WHY})" in out
    (row,) = [line for line in out.splitlines() if line.startswith("| *dummy*")]
    assert "(not ranked)" in row and not re.search("[¹²³]|\\*\\*", row.split("|", 2)[2])
    # the paper's own ranking is untouched: InstantID keeps the best Sim(GT) (0.464), not the dummy (~0.985)
    assert "| InstantID | **0.464¹**" in out
    csv_code, csv_out = _run(["leaderboard", str(dummy_run), "--include-paper", "--format", "csv"], capsys)
    df = pd.read_csv(__import__("io").StringIO(csv_out))
    dummy = df[df.label == "dummy"].iloc[0]
    assert not dummy.ranked and WHY in dummy.not_ranked_reason
    assert dummy[[c for c in df.columns if c.endswith(".rank")]].isna().all()
    # --allow-mixed opts back in, with a warning
    _, mixed = _run(["leaderboard", str(dummy_run), "--include-paper", "--format", "markdown", "--allow-mixed"], capsys)
    assert "--allow-mixed: dummy is ranked although" in mixed and f"| dummy | **{SIM_GT}¹ (n={SIM_GT_N})**" in mixed


def test_rich_leaderboard_greys_the_row_and_prints_the_banner(dummy_run, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    code, out = _run(["leaderboard", str(dummy_run), "--include-paper"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    assert f"! dummy: not ranked, not comparable with the paper's Table 1a ({WHY})" in flat
    assert "dummy (not ranked)" in out and "greyed rows are not ranked" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("dummy (not ranked)")]
    assert lines and not any(re.search("[¹²³]", ln) for ln in lines)
    assert SIM_GT in lines[0] and re.search(r"^InstantID +0\.464¹", out, re.M)


def test_measured_runs_are_ranked_only_among_comparable_runs(tmp_path) -> None:
    a = write_run(tmp_path / "a", base_results(model="a", bench=PAPER_BENCH))
    d = base_results(model="b", bench=PAPER_BENCH)
    d["cards"] = {**d["cards"], "copy_paste": "2.0.0"}  # scored with another copy-paste definition
    d["metrics"]["paper"]["p1"]["copy_paste.average"]["value"] = 0.01
    b = write_run(tmp_path / "b", d)
    t = build_leaderboard(combined_frame([load_results(a), load_results(b)], include_paper=False), subset="p1")
    rows = {r.label: r for r in t.rows}
    assert rows["a"].cells["copy_paste.average"].rank == 1 and rows["a"].ranked
    assert rows["b"].cells["copy_paste.average"].rank is None and not rows["b"].comparable
    assert t.banners == ["b: not ranked, not comparable with a (metric copy_paste version 2.0.0 vs 1.0.0); "
                         "--allow-mixed ranks it anyway"]
    # a run on the paper's bench with the paper's profile and protocol is ranked with the paper rows
    t2 = build_leaderboard(combined_frame([load_results(a)], include_paper=True), subset="p1")
    assert {r.label: r for r in t2.rows}["a"].ranked and not t2.banners


def test_plot_tradeoff_greys_the_offline_run_outside_fit_and_front(dummy_run, tmp_path, capsys) -> None:
    out = tmp_path / "fig.png"
    code, text = _run(["plot-tradeoff", str(dummy_run), "--out", str(out)], capsys)
    assert code == 0 and f"! dummy: not ranked, not comparable with the paper's Table 1a ({WHY})" in text
    df = pd.read_csv(tmp_path / "fig.csv")
    dummy = df[df.label == "dummy"].iloc[0]
    assert not dummy.comparable and not dummy.in_fit and not dummy.on_pareto_front and WHY in dummy.not_ranked_reason
    # without the dummy's (far better on both axes) point, the paper's front is the paper's own
    front = set(df[df.on_pareto_front.fillna(False).astype(bool)].model)
    assert front == {"qwen-image-edit", "omnigen2", "withanyone", "instantid"}
    code, _ = _run(["plot-tradeoff", str(dummy_run), "--allow-mixed", "--out", str(tmp_path / "mixed.png")], capsys)
    mixed = pd.read_csv(tmp_path / "mixed.csv")
    assert bool(mixed[mixed.label == "dummy"].on_pareto_front.iloc[0])


def test_report_shows_the_banner_and_no_rank_on_the_offline_run(dummy_run, tmp_path, capsys) -> None:
    code, _ = _run(["report", str(dummy_run), "--out", str(tmp_path / "r.html")], capsys)
    html = (tmp_path / "r.html").read_text()
    assert code == 0 and '<p class="banner">&#9888; dummy: not ranked, not comparable with the paper&#x27;s' in html
    row = re.search(r'<tr class="measured incomparable"[^>]*>(.*?)</tr>', html, re.S)
    assert row is not None and "rank" not in row.group(1)


def test_compare_uses_the_same_rule(dummy_run, tmp_path, capsys) -> None:
    d = json.loads(GOLDEN.read_text())
    other = copy.deepcopy(d)
    other["bench"] = {**d["bench"], "id": "WithAnyone/MultiID-Bench"}
    other["profile"] = {**d["profile"], "name": "paper"}
    write_run(tmp_path / "other", other)
    code, out = _run(["compare", str(dummy_run), str(tmp_path / "other")], capsys)
    assert code == 2
    assert f"bench demo@{GOLDEN_HASH} vs MultiID-Bench@{GOLDEN_HASH}" in out and "profile offline vs paper" in out
    code, out = _run(["compare", str(dummy_run), str(tmp_path / "other"), "--allow-mixed"], capsys)
    assert code == 0 and "--allow-mixed: compared although profile offline vs paper" in " ".join(out.split())


def test_plot_says_why_a_measured_oracle_run_is_not_drawn(tmp_path, capsys) -> None:
    """README command (a) evaluates copy-reference; its plot must not drop that run without a word."""
    d = json.loads(GOLDEN.read_text())
    d["model"] = "copy-reference"
    write_run(tmp_path / "cr", d)
    code, text = _run(["plot-tradeoff", str(tmp_path / "cr"), "--out", str(tmp_path / "fig.png")], capsys)
    assert code == 0 and "! copy-reference: not drawn, an oracle limit" in text and "--include-limits" in text
    assert "copy-reference" not in set(pd.read_csv(tmp_path / "fig.csv").label)
    code, text = _run(["plot-tradeoff", str(tmp_path / "cr"), "--include-limits", "--out", str(tmp_path / "l.png")],
                      capsys)
    assert code == 0 and "not drawn" not in text
    assert "copy-reference" in set(pd.read_csv(tmp_path / "l.csv").label)
