"""Headline numbers without digging: ``Run.metrics()``, ``Run.headline()``, one-line ``repr``, ``--json``."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

import multiid_bench as mb
from multiid_bench.errors import ConfigError

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "demo_dummy_offline"


def test_metrics_is_a_flat_table_of_what_results_json_says() -> None:
    run = mb.load_run(GOLDEN)
    df = run.metrics(protocol="paper", subset="all")
    assert list(df.columns) == ["metric", "face_model", "value", "ci_lo", "ci_hi", "n", "statistic"]
    stored = run.summary["metrics"]["paper"]["all"]
    assert len(df) == len(stored)
    row = df[(df.metric == "sim_gt") & (df.face_model == "dlib")].iloc[0]
    assert row.value == stored["sim_gt.dlib"]["value"] and row.n == stored["sim_gt.dlib"]["n"] == 17
    clip = df[df.metric == "clip_t"].iloc[0]
    assert pd.isna(clip.face_model) and math.isnan(clip.value)  # the scorer's weights were missing: NaN, not 0
    p1 = run.metrics(subset="p1")  # the headline protocol of this run is strict
    assert p1[p1.metric == "sim_gt"].value.iloc[0] == run.summary["metrics"]["strict"]["p1"]["sim_gt.dlib"]["value"]
    with pytest.raises(ConfigError, match=r"no subset 'p4' under the paper protocol; it has \['all', 'p1', 'p2', 'p3'\]"):
        run.metrics("paper", "p4")


def test_headline_and_repr() -> None:
    run = mb.load_run(GOLDEN)
    head = run.headline(protocol="paper")
    stored = run.summary["metrics"]["paper"]["all"]
    assert list(head["metrics"]) == ["sim_gt", "sim_ref", "copy_paste_ranked", "clip_i", "clip_t", "aesthetic"]
    assert head["metrics"]["sim_gt"] == {"value": stored["sim_gt.average"]["value"], "ci95": None, "n": 17}
    assert head["metrics"]["clip_t"]["value"] is None
    assert (head["model"], head["bench"], head["profile"], head["protocol"]) == ("dummy", "demo", "offline", "paper")
    json.dumps(head)  # JSON-ready
    text = repr(run)
    assert "\n" not in text and len(text) < 250, text
    assert text == (f"Run(model='dummy', bench='demo', profile='offline', protocol='strict', cases=17: 17 ok, "
                    f"0 failed, 0 not applicable, folder='{GOLDEN}')")
    assert repr(mb.api.Run(Path("runs/x"), None, 2)).startswith("Run(incomplete: 2 case(s) written")
    with pytest.raises(ConfigError, match="results.json is not written yet"):
        mb.api.Run(Path("runs/x"), None, 2).headline()


@pytest.mark.slow
def test_evaluate_json_prints_the_headline_on_stdout(tmp_path: Path) -> None:
    from multiid_bench.cli.main import cli

    res = CliRunner().invoke(cli, [
        "evaluate", "--model", "copy-reference", "--bench", "demo", "--profile", "offline", "--device", "cpu",
        "--limit", "2", "--no-scorers", "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "run"), "--json"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout) == mb.load_run(tmp_path / "run").headline()
    assert "evaluated" in res.stderr  # the table still shows, on stderr
