"""Results store (schema validation -> tidy frame) and leaderboard tables in every format."""
from __future__ import annotations

import json
import math

import pytest
from lb_fixtures import base_results, write_run

from multiid_bench.errors import BadInputError, ConfigError, MissingDataError
from multiid_bench.leaderboard.render import render
from multiid_bench.leaderboard.store import combined_frame, load_cases, load_results, results_frame
from multiid_bench.leaderboard.tables import build_leaderboard
from multiid_bench.metrics.cards import get_card
from multiid_bench.runner.run_folder import schema_errors as validate


def test_valid_results_load_into_a_tidy_frame(make_run) -> None:
    run = load_results(make_run("a", model="UNO"))
    df = results_frame([run])
    row = df[(df.protocol == "strict") & (df.subset == "p1") & (df.metric_key == "sim_gt.average")].iloc[0]
    assert (row.value, row.ci_lo, row.ci_hi, row.n) == (0.42, 0.40, 0.44, 20)
    assert row.provenance == "measured" and row.model == "uno" and row.row_kind == "baseline"
    assert math.isnan(df[(df.protocol == "paper") & (df.metric_key == "clip_t")].ci_lo.iloc[0])
    assert len(load_cases(run)) == 4


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d.pop("bench"), "'bench' is a required property"),
    (lambda d: d.update(schema_version=2), "1 was expected"),
    (lambda d: d["metrics"]["paper"].update(p9={}), "'p9'"),
    (lambda d: d["metrics"]["paper"]["p1"]["sim_gt.arcface"].update(n="ten"), "is not of type 'integer'"),
    (lambda d: d["metrics"]["paper"]["p1"]["sim_gt.arcface"].update(ci95=[0.1]), "['ci95']"),
    (lambda d: d.update(reportable="yes"), "is not of type 'boolean'"),
])
def test_schema_violations_are_refused_with_their_path(tmp_path, mutate, needle) -> None:
    d = base_results()
    mutate(d)
    assert any(needle in e for e in validate(d)), validate(d)
    write_run(tmp_path / "bad", d)
    with pytest.raises(BadInputError, match="does not match the results schema"):
        load_results(tmp_path / "bad")


def test_missing_and_broken_files(tmp_path) -> None:
    with pytest.raises(MissingDataError, match="no results file"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(BadInputError, match="not a JSON file"):
        load_results(tmp_path)


def test_ci_bounds_checked(tmp_path) -> None:
    d = base_results()
    d["metrics"]["strict"]["p1"]["sim_gt.average"]["ci95"] = [0.5, 0.4]
    write_run(tmp_path / "r", d)
    with pytest.raises(BadInputError, match="lower > upper"):
        load_results(tmp_path / "r")


def test_leaderboard_ranks_by_card_direction_and_keeps_provenance(make_run) -> None:
    # copy_paste.average 0.13 < every paper baseline except 3; on the paper's bench, so ranked with Table 1a
    good = make_run("good", model="mine", bench={"id": "WithAnyone/MultiID-Bench", "manifest_sha256": "a" * 64,
                                                 "n_cases": 10})
    df = combined_frame([load_results(good)], include_paper=True)
    t = build_leaderboard(df, subset="p1", protocol="paper")
    headers = [c.header for c in t.columns]
    assert headers[0] == f"Sim(GT) {get_card('sim_gt').arrow}" == "Sim(GT) ↑"
    assert any(h.startswith("Copy-Paste") and h.endswith("↓") for h in headers)
    rows = {r.label: r for r in t.rows}
    assert rows["mine"].provenance == "measured" and rows["DreamO"].provenance == "paper"
    # copy-paste: lower is better: Qwen 0.093 (1), FLUX 0.099 (2), mine 0.13 (3), WithAnyone 0.144 unranked
    # the paper's CP column is Sim(GT)-filtered: it sits (and ranks) next to the measured filtered column
    assert rows["Qwen-Image-Edit"].cells["copy_paste_ranked.average"].rank == 1
    assert rows["FLUX.1 Kontext"].cells["copy_paste_ranked.average"].rank == 2
    assert rows["mine"].cells["copy_paste_ranked.average"].rank == 3
    assert rows["WithAnyone (Ours)"].cells["copy_paste_ranked.average"].rank is None
    assert "copy_paste.average" not in rows["DreamO"].cells and rows["mine"].cells["copy_paste.average"].rank == 1
    # sim_gt: higher is better; the GT limit (1.000) is shown but never ranked
    assert rows["GT"].cells["sim_gt.average"].rank is None
    assert rows["InstantID"].cells["sim_gt.average"].rank == 1
    assert "reported in the paper, Table 1a" in rows["DreamO"].provenance_text
    assert "measured · paper protocol · WithAnyone/MultiID-Bench@aaaaaaaa" in rows["mine"].provenance_text


def test_strict_view_shows_ci_and_limit_runs_are_flagged(make_run) -> None:
    run = load_results(make_run("lim", model="mine", reportable=False))
    t = build_leaderboard(combined_frame([run], include_paper=False), subset="p1", protocol="strict")
    (row,) = t.rows
    assert row.cells["sim_gt.average"].text() == "0.420 ± 0.020"
    assert row.n_text == "10/10" and not row.reportable
    md = render(t, "markdown")
    assert "NOT reportable" in md and "0.420 ± 0.020" in md
    assert "(n=20)" in md  # metric n differs from the evaluated case count, so it is shown


@pytest.mark.parametrize("fmt,needles", [
    ("markdown", ["| Model | Sim(GT) ↑", "**0.464¹**", "reported in the paper, Table 1a"]),
    ("csv", ["model,label,provenance", "sim_gt.average.rank", "instantid,InstantID,paper"]),
    ("latex", [r"\begin{tabular}", r"Sim(GT) $\uparrow$", r"\textbf{0.464}"]),
    ("html", ['<table class="mbench">', 'class="rank1"', "Copy-Paste (Sim(GT)-filtered) ↓"]),
    ("rich", ["Sim(GT)", "InstantID", "0.464¹"]),
])
def test_paper_only_leaderboard_in_every_format(fmt, needles) -> None:
    t = build_leaderboard(combined_frame([], include_paper=True), subset="p1")
    text = render(t, fmt)
    for n in needles:
        assert n in text, (fmt, n)


def test_face_model_view_uses_table5_and_paper_table_override() -> None:
    df = combined_frame([], include_paper=True)
    t5 = build_leaderboard(df, subset="p2", face_model="facenet")
    assert [c.key for c in t5.columns] == ["sim_gt.facenet", "sim_ref.facenet", "copy_paste_ranked_fm.facenet"]
    assert {r.label for r in t5.rows} >= {"GPT", "WithAnyone (Ours)"}
    t6 = build_leaderboard(df, subset="p2", paper_table="6")
    assert [r.label for r in t6.rows][0] == "Phase 1 w/o fixed txt"
    with pytest.raises(ConfigError, match="--paper-table"):
        build_leaderboard(df, subset="p2", paper_table="7")
    with pytest.raises(ConfigError, match="--subset"):
        build_leaderboard(df, subset="p7")


def test_duplicate_model_runs_are_told_apart(make_run) -> None:
    runs = [load_results(make_run("r1", model="mine")), load_results(make_run("r2", model="mine"))]
    t = build_leaderboard(combined_frame(runs, include_paper=False), subset="p1")
    assert sorted(r.label for r in t.rows) == ["mine [r1]", "mine [r2]"]


def test_unknown_metric_is_skipped_not_invented(make_run, caplog) -> None:
    d = base_results()
    d["metrics"]["paper"]["p1"]["mystery.arcface"] = {"value": 1.0, "n": 1, "ci95": None, "statistic": "mean"}
    run = load_results(write_run(make_run("x").parent / "y", d))
    df = results_frame([run])
    assert "mystery.arcface" not in set(df.metric_key)
    assert "no metric card" in caplog.text
    json.dumps(df.to_dict())  # the frame stays plain data


def test_the_one_schema_accepts_the_contract_and_refuses_violations() -> None:
    """One schema file (the runner's), checked by jsonschema, for the runner and the leaderboard alike."""
    from multiid_bench.leaderboard.data import DATA_DIR

    assert not list(DATA_DIR.glob("*.schema.json"))
    assert validate(base_results()) == []
    for mutate in (lambda d: d.pop("counts"), lambda d: d.update(schema_version=2),
                   lambda d: d["metrics"]["strict"].update(p9={}),
                   lambda d: d["metrics"]["paper"]["p1"]["clip_t"].update(n=-1)):
        bad = base_results()
        mutate(bad)
        assert validate(bad)


def test_view_without_measured_values_says_why(make_run) -> None:
    run = load_results(make_run("r"))
    t = build_leaderboard(combined_frame([run], include_paper=False), subset="p3")
    assert not t.rows and any("no measured values for subset 'p3'" in n and "paper/p1" in n for n in t.notes)


def test_limit_runs_are_never_ranked(make_run) -> None:
    full = load_results(make_run("full", model="a"))
    smoke = load_results(make_run("smoke", model="b", reportable=False))
    d = base_results(model="b", reportable=False)
    assert d["metrics"]["paper"]["p1"]["copy_paste.average"]["value"] == 0.13
    t = build_leaderboard(combined_frame([full, smoke], include_paper=False), subset="p1")
    rows = {r.label: r for r in t.rows}
    assert rows["a"].cells["copy_paste.average"].rank == 1
    assert rows["b"].cells["copy_paste.average"].rank is None and not rows["b"].ranked


def test_face_failure_rate_column_in_strict_view(make_run) -> None:
    run = load_results(make_run("r"))  # the fixture writes face_failure_rate.average (runner layout)
    t = build_leaderboard(combined_frame([run], include_paper=False), subset="p1", protocol="strict")
    assert [c.key for c in t.columns] == ["sim_gt.average", "copy_paste.average", "copy_paste_ranked.average",
                                          "face_failure_rate.average"]
    assert t.columns[-1].header == "Face failure rate ↓"


def test_single_person_blending_is_na_and_never_ranked_under_both_protocols(make_run) -> None:
    def with_blend(d: dict, value: float) -> dict:
        for protocol in ("paper", "strict"):
            for subset in ("p1", "p2"):
                block = d["metrics"][protocol].setdefault(subset, json.loads(json.dumps(d["metrics"][protocol]["p1"])))
                for key in ("blend_gt.average", "blend_ref.average"):
                    block[key] = {"value": value, "n": 10, "ci95": None, "statistic": "mean"}
        return d

    a = make_run("a", results=with_blend(base_results(model="a"), 0.0))  # the official code's forced 0.0
    b = make_run("b", results=with_blend(base_results(model="b"), 0.2))
    df = combined_frame([load_results(a), load_results(b)], include_paper=False)
    for protocol in ("paper", "strict"):
        p1 = build_leaderboard(df, subset="p1", protocol=protocol)
        cells = [r.cells["blend_gt.average"] for r in p1.rows] + [r.cells["blend_ref.average"] for r in p1.rows]
        assert all(c.text() == "N/A" and c.rank is None and c.n == 0 for c in cells)
        assert any("Blending is undefined on single-person cases (p1)" in n for n in p1.notes)
        p2 = build_leaderboard(df, subset="p2", protocol=protocol)
        assert [r.cells["blend_gt.average"].rank for r in p2.rows] == [1, 2]  # lower is better: 0.0 first
        assert [r.cells["blend_ref.average"].text() for r in p2.rows] == ["0.000", "0.200"]
        assert not any("Blending is undefined" in n for n in p2.notes)
