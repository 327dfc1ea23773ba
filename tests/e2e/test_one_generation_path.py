"""Issue 23 item 1: ``generate`` (two shards) then ``score`` gives exactly what ``evaluate`` gives.

Both workflows hand the model the same references (``ref_source``, default ``prepared``: tight face crops),
record which ones in every generation record and in ``generate.json``, and ``score`` refuses images whose
records say the model saw other references. Demo bench, offline profile, the multi-person subsets.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from multiid_bench.adapters import ADAPTERS
from multiid_bench.cli.main import cli

pytestmark = pytest.mark.slow

COMMON = ["--bench", "demo", "--subset", "p2,p3", "--offline"]
SCORING = ["--profile", "offline", "--device", "cpu", "--no-scorers"]


@pytest.fixture(autouse=True)
def _unfrozen():
    yield
    ADAPTERS._frozen = False


def _mbench(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _per_case(run: Path) -> dict[str, dict]:
    rows = [json.loads(line) for f in sorted(run.glob("cases*.jsonl")) for line in f.read_text().splitlines()]
    return {r["case_id"]: (r["status"], r["scores"]) for r in rows}


@pytest.mark.parametrize("model", ["dummy", "copy-reference"])
def test_generate_then_score_equals_evaluate(model: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cache = str(tmp_path / "cache")
    evaluated, images, scored = tmp_path / "evaluated", tmp_path / "images", tmp_path / "scored"
    res = _mbench("evaluate", "--model", model, "--out", str(evaluated), "--cache-dir", cache, *SCORING, *COMMON)
    assert res.exit_code == 0, res.output
    for i in range(2):
        res = _mbench("generate", "--model", model, "--shard", f"{i}/2", "--out", str(images), "--cache-dir", cache,
                      "--profile", "offline", *COMMON)
        assert res.exit_code == 0, res.output
    records = [json.loads(line) for f in sorted(images.glob("generations.shard-*.jsonl"))
               for line in f.read_text().splitlines()]
    assert len(records) == 6 and {r["ref_source"] for r in records} == {"prepared"}
    assert json.loads((images / "generate.json").read_text())["ref_source"] == "prepared"
    first = [json.loads(line) for line in (evaluated / "generations.jsonl").read_text().splitlines()]
    assert {r["ref_source"] for r in first} == {"prepared"}

    res = _mbench("score", "--images", str(images), "--name", model, "--out", str(scored), "--cache-dir", cache,
                  *SCORING, *COMMON)
    assert res.exit_code == 0, res.output
    assert _per_case(scored) == _per_case(evaluated)  # every per-case metric of both protocols, exactly
    res = _mbench("compare", str(evaluated), str(scored))
    assert res.exit_code == 0, res.output

    # the model saw prepared crops: scoring them against the raw photos is refused, one line, exit 2
    from multiid_bench.cli._errors import run_with_error_mapping

    code = run_with_error_mapping(cli, ["score", "--images", str(images), "--ref-source", "raw", "--out",
                                        str(tmp_path / "raw"), "--cache-dir", cache, *SCORING, *COMMON], debug=False)
    err = capsys.readouterr().err
    assert code == 2 and "ref_source=prepared" in err and "Traceback" not in err
    assert not (tmp_path / "raw").exists()
