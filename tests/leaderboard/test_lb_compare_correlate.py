"""compare: 0 within tolerance, 1 past it, 2 not comparable (library and CLI); correlate against scipy."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from lb_fixtures import base_results, demo_cases, write_run
from scipy import stats

from multiid_bench.cli.main import main
from multiid_bench.errors import ConfigError, NotComparableError
from multiid_bench.leaderboard.compare import compare_runs, load_tolerances
from multiid_bench.leaderboard.correlate import correlate, read_human_csv
from multiid_bench.leaderboard.store import load_results


def _pair(tmp_path, mutate=None, old_over=None):
    old = base_results(**(old_over or {}))
    new = copy.deepcopy(old)
    if mutate:
        mutate(new)
    return write_run(tmp_path / "old", old), write_run(tmp_path / "new", new)


def _exit(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return int(e.value.code), out.out + out.err


def _set(key: str, value: float, protocol: str = "paper", subset: str = "p1"):
    def f(d):
        d["metrics"][protocol][subset][key]["value"] = value
    return f


def test_identical_runs_exit_0(tmp_path, capsys) -> None:
    old, new = _pair(tmp_path)
    comp = compare_runs(load_results(old), load_results(new))
    assert comp.exit_code == 0 and comp.deltas and all(d.status == "ok" for d in comp.deltas)
    code, out = _exit(["compare", str(old), str(new)], capsys)
    assert code == 0 and "all metrics within tolerance" in out


def test_move_within_tolerance_exit_0_and_past_it_exit_1(tmp_path, capsys) -> None:
    old, new = _pair(tmp_path, _set("sim_gt.arcface", 0.4115))  # default tolerance 0.002
    assert _exit(["compare", str(old), str(new)], capsys)[0] == 0
    old, new = _pair(tmp_path / "b", _set("sim_gt.arcface", 0.405))
    comp = compare_runs(load_results(old), load_results(new))
    (bad,) = comp.failed
    assert (bad.key, bad.status, round(bad.delta, 6)) == ("sim_gt.arcface", "worse", -0.005)
    code, out = _exit(["compare", str(old), str(new)], capsys)
    assert code == 1 and "1 metric(s) past tolerance" in out and "sim_gt.arcface" in out


def test_direction_worse_lets_improvements_pass(tmp_path, capsys) -> None:
    # copy-paste is lower-is-better (card): 0.12 -> 0.10 is an improvement
    old, new = _pair(tmp_path, _set("copy_paste.arcface", 0.10))
    assert _exit(["compare", str(old), str(new)], capsys)[0] == 1  # default: any move fails
    tol = tmp_path / "tol.toml"
    tol.write_text('[default]\nabs = 0.002\ndirection = "worse"\n')
    code, out = _exit(["compare", str(old), str(new), "--tolerance", str(tol)], capsys)
    assert code == 0 and "better" in out
    tol.write_text('[default]\nabs = 0.002\ndirection = "worse"\n[metric."copy_paste.arcface"]\nabs = 0.05\n')
    assert load_tolerances(tol).for_key("copy_paste.arcface").abs == 0.05
    assert load_tolerances(tol).for_key("copy_paste.average").abs == 0.002


def test_missing_metric_fails_and_new_metric_does_not(tmp_path) -> None:
    old, new = _pair(tmp_path, lambda d: d["metrics"]["paper"]["p1"].pop("clip_t"))
    comp = compare_runs(load_results(old), load_results(new))
    assert [(d.key, d.status) for d in comp.failed] == [("clip_t", "missing")]
    comp2 = compare_runs(load_results(new), load_results(old))
    assert comp2.exit_code == 0 and ("clip_t", "new") in [(d.key, d.status) for d in comp2.deltas]


@pytest.mark.parametrize("mutate,reason", [
    (lambda d: d["bench"].update(manifest_sha256="c" * 64), "bench demo@aaaaaaaa vs demo@cccccccc"),
    (lambda d: d.update(protocol="strict"), "headline protocol"),
    (lambda d: d["cards"].update(copy_paste="2.0.0"), "metric copy_paste version 1.0.0 vs 2.0.0"),
    (lambda d: d.update(profile={"name": "offline"}), "profile"),
    (lambda d: d.update(reportable=False), "--limit"),
])
def test_not_comparable_exit_2(tmp_path, capsys, mutate, reason) -> None:
    old, new = _pair(tmp_path, mutate)
    with pytest.raises(NotComparableError, match=reason):
        compare_runs(load_results(old), load_results(new))
    code, out = _exit(["compare", str(old), str(new)], capsys)
    assert code == 2 and reason in out


def test_compare_protocol_compares_one_protocol_across_different_headlines(tmp_path, capsys) -> None:
    def strict_headline_and_moved_paper(d):
        d.update(protocol="strict")
        d["metrics"]["paper"]["p1"]["sim_gt.arcface"]["value"] = 0.30  # far past tolerance, paper protocol only
    old, new = _pair(tmp_path, strict_headline_and_moved_paper)
    assert _exit(["compare", str(old), str(new)], capsys)[0] == 2  # headline paper vs strict
    comp = compare_runs(load_results(old), load_results(new), protocol="strict")
    assert comp.exit_code == 0 and comp.deltas and {d.protocol for d in comp.deltas} == {"strict"}
    code, out = _exit(["compare", str(old), str(new), "--protocol", "strict"], capsys)
    assert code == 0 and "all metrics within tolerance" in out
    code, out = _exit(["compare", str(old), str(new), "--protocol", "paper"], capsys)
    assert code == 1 and "sim_gt.arcface" in out


def test_tolerance_file_errors(tmp_path, capsys) -> None:
    bad = tmp_path / "t.toml"
    bad.write_text("[metric.simgt]\nabs = 0.1\n")
    with pytest.raises(KeyError, match="did you mean|Did you mean"):
        load_tolerances(bad)
    bad.write_text('[default]\ndirection = "sideways"\n')
    with pytest.raises(ConfigError, match="direction"):
        load_tolerances(bad)
    old, new = _pair(tmp_path)
    assert _exit(["compare", str(old), str(new), "--tolerance", str(tmp_path / "none.toml")], capsys)[0] == 2


def test_compare_json_output(tmp_path, capsys) -> None:
    old, new = _pair(tmp_path, _set("clip_t", 0.40))
    code, out = _exit(["compare", str(old), str(new), "--json"], capsys)
    data = json.loads(out)
    assert code == 1 and data["exit_code"] == 1
    assert any(d["key"] == "clip_t" and d["failed"] for d in data["deltas"])


# ---------------------------------------------------------------- correlate


def _runs_for_correlation(tmp_path, n_models: int = 3, n_cases: int = 6):
    rng = np.random.default_rng(0)
    runs, truth = [], {}
    for m in range(n_models):
        root = tmp_path / f"model{m}"
        rows = demo_cases(root, n=n_cases, fail_last=False)
        for r in rows:
            v = float(rng.uniform(-0.2, 0.6))
            r["scores"]["paper"]["arcface"]["copy_paste"] = v
            truth[(f"model{m}", r["case_id"])] = v
        runs.append(write_run(root, base_results(model=f"model{m}"), rows))
    return runs, truth


def test_correlate_matches_scipy_on_values_and_within_case_ranks(tmp_path, capsys) -> None:
    runs, truth = _runs_for_correlation(tmp_path)
    rng = np.random.default_rng(1)
    human = {k: v + float(rng.normal(0, 0.1)) for k, v in truth.items()}
    csv_path = tmp_path / "human.csv"
    lines = ["case_id,model,dimension,score"] + [f"{c},{m},copy_paste,{h}" for (m, c), h in human.items()]
    lines.append("p1_0000,model0,aesthetics,9")  # another dimension: filtered out
    csv_path.write_text("\n".join(lines) + "\n")
    rows = read_human_csv(csv_path, dimension="copy_paste")
    res = correlate(rows, [load_results(r) for r in runs], "copy_paste.arcface")
    keys = list(truth)
    x, y = [human[k] for k in keys], [truth[k] for k in keys]
    assert res.n == 18 and res.dropped == 0
    assert res.stats["pearson"] == pytest.approx(tuple(stats.pearsonr(x, y)))
    assert res.stats["kendall"] == pytest.approx(tuple(stats.kendalltau(x, y)))
    assert res.paper_dimension == "Copy-Paste" and res.paper["pearson"] == (0.4417, 7.98e-48)
    ranked = correlate(rows, [load_results(r) for r in runs], "copy_paste.arcface", within_case_ranks=True)
    hr, mr = [], []
    for c in sorted({c for _, c in keys}):
        ms = [f"model{i}" for i in range(3)]
        hr += list(stats.rankdata([human[(m, c)] for m in ms]))
        mr += list(stats.rankdata([truth[(m, c)] for m in ms]))
    assert ranked.stats["spearman"][0] == pytest.approx(stats.spearmanr(hr, mr).statistic)
    code, out = _exit(["correlate", str(csv_path), *map(str, runs), "--metric", "copy_paste.arcface",
                       "--dimension", "copy_paste", "--json"], capsys)
    assert code == 0 and json.loads(out)["n"] == 18


def test_correlate_reports_bad_input(tmp_path) -> None:
    runs, _ = _runs_for_correlation(tmp_path, n_models=1)
    bad = tmp_path / "bad.csv"
    bad.write_text("case,score\nx,1\n")
    from multiid_bench.errors import BadInputError

    with pytest.raises(BadInputError, match="case_id"):
        read_human_csv(bad)
    bad.write_text("case_id,score\np1_0000,high\n")
    with pytest.raises(BadInputError, match="line 2"):
        read_human_csv(bad)
    bad.write_text("case_id,score\nnope_1,1\nnope_2,2\nnope_3,3\n")
    with pytest.raises(BadInputError, match="only 0"):
        correlate(read_human_csv(bad), [load_results(runs[0])], "copy_paste.arcface")
