"""Honest uncertainty: paired bootstrap CI of new - old in compare (and its gate); no CI over n < 10."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from lb_fixtures import base_results, write_run

from multiid_bench.cli.main import main
from multiid_bench.leaderboard.compare import compare_runs
from multiid_bench.leaderboard.paired import paired_bootstrap_ci
from multiid_bench.leaderboard.render import render
from multiid_bench.leaderboard.store import combined_frame, load_results
from multiid_bench.leaderboard.tables import MIN_CI_N, build_leaderboard


def _oracle_percentile_ci(new: np.ndarray, old: np.ndarray, n_resamples: int, seed: int) -> tuple[float, float]:
    """Independent paired percentile bootstrap in plain numpy (fp64): resample case indices, both runs together."""
    rng = np.random.default_rng(seed)
    d = new - old
    idx = rng.integers(0, d.size, size=(n_resamples, d.size))
    means = d[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def test_paired_ci_matches_an_independent_numpy_bootstrap() -> None:
    rng = np.random.default_rng(7)
    old = rng.uniform(0.2, 0.6, 40)
    new = old + 0.01 + rng.normal(0, 0.03, 40)
    ci = paired_bootstrap_ci(new, old, n_resamples=20000, seed=1)
    lo, hi = _oracle_percentile_ci(new, old, 40000, 123)
    assert ci.n == 40 and math.isclose(ci.mean, float(np.mean(new - old)), abs_tol=1e-12)
    assert abs(ci.lo - lo) < 0.0015 and abs(ci.hi - hi) < 0.0015, (ci, lo, hi)
    # the normal-theory interval of a mean is a second, analytic check of the width
    se = float(np.std(new - old, ddof=1) / np.sqrt(40))
    assert abs((ci.hi - ci.lo) - 2 * 1.96 * se) < 0.2 * 2 * 1.96 * se


def test_pairing_cancels_the_shared_spread() -> None:
    old = np.linspace(0.1, 0.9, 20)  # cases differ a lot; the new run is exactly 0.05 better on every case
    ci = paired_bootstrap_ci(old + 0.05, old)
    assert math.isclose(ci.lo, 0.05, abs_tol=1e-12) and math.isclose(ci.hi, 0.05, abs_tol=1e-12)
    assert ci.excludes_zero
    # an unpaired bootstrap of the same numbers would straddle 0 (the spread of 0.8 swamps the 0.05 shift)
    rng = np.random.default_rng(0)
    a = (old + 0.05)[rng.integers(0, 20, (4000, 20))].mean(1) - old[rng.integers(0, 20, (4000, 20))].mean(1)
    assert np.percentile(a, 2.5) < 0 < np.percentile(a, 97.5)


def test_fewer_than_ten_shared_cases_get_no_interval() -> None:
    ci = paired_bootstrap_ci([0.5] * (MIN_CI_N - 1), [0.4] * (MIN_CI_N - 1))
    assert math.isnan(ci.lo) and ci.n == 9 and ci.note == "n=9 < 10 shared cases" and not ci.excludes_zero
    assert ci.text() == "— (n=9 < 10 shared cases)"


def _rows(values: list[float]) -> list[dict]:
    return [{"case_id": f"p1_{i:04d}", "subset": "p1", "status": "ok",
             "scores": {"paper": {"arcface": {"sim_gt": v}}}} for i, v in enumerate(values)]


def _pair(tmp_path, old_vals: list[float], new_vals: list[float]):
    old = base_results()
    new = copy.deepcopy(old)
    new["metrics"]["paper"]["p1"]["sim_gt.arcface"]["value"] = 0.405  # 0.41 -> 0.405: past the 0.002 tolerance
    return (write_run(tmp_path / "old", old, _rows(old_vals)), write_run(tmp_path / "new", new, _rows(new_vals)))


def _exit(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return int(e.value.code or 0), out.out + out.err


def test_compare_reports_the_paired_ci_and_the_gate_uses_it(tmp_path, capsys) -> None:
    base = [0.30 + 0.02 * i for i in range(12)]
    noisy = [v + (0.04 if i % 2 else -0.05) for i, v in enumerate(base)]  # mean -0.005, CI straddles 0
    old, new = _pair(tmp_path / "noisy", base, noisy)
    comp = compare_runs(load_results(old), load_results(new))
    (d,) = [d for d in comp.deltas if (d.protocol, d.subset, d.key) == ("paper", "p1", "sim_gt.arcface")]
    diffs = np.array(noisy) - np.array(base)
    assert d.paired.n == 12 and math.isclose(d.paired.mean, float(diffs.mean()), abs_tol=1e-12)
    assert d.paired.lo < 0 < d.paired.hi and d.failed and d.status == "worse"
    code, out = _exit(["compare", str(old), str(new)], capsys)
    assert code == 1 and "paired Δ, 95% CI" in out and f"{d.paired.mean:+.4f} [{d.paired.lo:+.4f}," in out
    code, out = _exit(["compare", str(old), str(new), "--ci-gate"], capsys)
    assert code == 0 and "worse (CI includes 0)" in out
    # a shift every case agrees on: the CI excludes 0 and the gate still fails it
    old2, new2 = _pair(tmp_path / "shift", base, [v - 0.005 for v in base])
    code, out = _exit(["compare", str(old2), str(new2), "--ci-gate", "--json"], capsys)
    data = json.loads(out)
    (row,) = [r for r in data["deltas"] if (r["protocol"], r["subset"], r["key"]) == ("paper", "p1", "sim_gt.arcface")]
    assert code == 1 and row["failed"] and row["paired_ci"]["n"] == 12
    assert math.isclose(row["paired_ci"]["lo"], -0.005, abs_tol=1e-9) and math.isclose(row["paired_ci"]["hi"], -0.005,
                                                                                        abs_tol=1e-9)


def test_compare_without_rows_warns_and_the_gate_falls_back(tmp_path, capsys) -> None:
    old = write_run(tmp_path / "o", base_results())
    d = base_results()
    d["metrics"]["paper"]["p1"]["sim_gt.arcface"]["value"] = 0.405
    new = write_run(tmp_path / "n", d)
    code, out = _exit(["compare", str(old), str(new), "--ci-gate"], capsys)
    assert code == 1 and "no paired CI: a run has no per-case rows" in out and "judged by its tolerance alone" in out


def test_leaderboard_omits_a_ci_over_fewer_than_ten_cases(make_run) -> None:
    d = base_results()
    d["metrics"]["strict"]["p1"]["sim_gt.average"].update(n=9)  # 9 cases: the interval is not shown
    run = load_results(write_run(make_run("x").parent / "small", d))
    t = build_leaderboard(combined_frame([run], include_paper=False), subset="p1", protocol="strict")
    (row,) = t.rows
    assert row.cells["sim_gt.average"].text() == "0.420" and row.cells["copy_paste.average"].text() == "0.140 ± 0.040"
    assert any(n.startswith("CI not shown where n < 10") and "sim_gt.average (n=9)" in n for n in t.notes)
    csv = render(t, "csv")
    assert "0.4,0.44,9" in csv  # the CSV keeps the exact bounds


def test_report_flags_a_ci_over_fewer_than_ten_cases(tmp_path) -> None:
    from multiid_bench.leaderboard.report import build_report

    d = base_results()
    d["metrics"]["strict"]["p1"]["sim_gt.average"].update(n=9)
    out = build_report(write_run(tmp_path / "r", d), tmp_path / "r.html", include_paper=False)
    html = out.read_text()
    assert "0.4200 (no CI: n &lt; 10)" in html and "0.1400 [0.1000, 0.1800]" in html


def test_compare_table_at_80_columns_breaks_no_key_or_number(tmp_path, capsys, monkeypatch) -> None:
    base = [0.30 + 0.02 * i for i in range(12)]
    old, new = _pair(tmp_path, base, [v - 0.005 for v in base])
    monkeypatch.setenv("COLUMNS", "80")
    code, out = _exit(["compare", str(old), str(new)], capsys)
    lines = out.splitlines()
    assert code == 1 and max(len(ln) for ln in lines) <= 80
    comp = compare_runs(load_results(old), load_results(new))
    for d in comp.deltas:  # every key whole at the start of a line, with old, new and delta on that line
        hit = [ln for ln in lines if ln.startswith(f"{d.key} ")]
        assert hit, d.key
        assert any(f"{d.old:.4f}" in ln.split() and f"{d.new:.4f}" in ln.split() for ln in hit), d.key
    assert "…" not in out and "[-0.0050," in out
