"""``mbench generate --model dummy`` then ``mbench score`` on its folder: the split workflow end to end.

Offline demo bench, offline profile (real MTCNN + dlib), strict protocol, two multi-person cases. The dummy
pastes each reference into its GT face box, so the scorer must find every face, match it to its
reference (Sim(Ref) near 1) and call the result closer to the references than to the GT (copy-paste > 0).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from multiid_bench.adapters import ADAPTERS
from multiid_bench.cli.main import cli

pytestmark = pytest.mark.slow

COMMON = ["--bench", "demo", "--subset", "p2", "--limit", "2", "--offline"]


@pytest.fixture(autouse=True)
def _unfrozen():
    yield
    ADAPTERS._frozen = False


def test_generate_then_score(tmp_path: Path):
    cache, images = tmp_path / "cache", tmp_path / "dummy"
    res = CliRunner().invoke(cli, ["generate", "--model", "dummy", "--profile", "offline", "--seed", "3", "--out", str(images),
                                   "--cache-dir", str(cache), "--json", *COMMON], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["ok"] == 2  # progress lines go to stderr
    records = [json.loads(line) for line in (images / "generations.jsonl").read_text().splitlines()]
    assert all(r["status"] == "ok" and "boxes" in r["gt_derived_inputs"] for r in records)

    scored = tmp_path / "scored"
    res = CliRunner().invoke(cli, ["score", "--images", str(images), "--name", "dummy", "--profile", "offline",
                                   "--protocol", "strict", "--device", "cpu", "--no-scorers", "--cache-dir",
                                   str(cache), "--out", str(scored), *COMMON], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    results = json.loads((scored / "results.json").read_text())
    assert results["model"] == "dummy" and results["reportable"] is False
    assert results["counts"]["expected"] == results["counts"]["evaluated"] == 2 and results["counts"]["failed"] == 0
    m = results["metrics"]["strict"]["p2"]
    assert m["face_failure_rate.dlib"]["value"] == 0.0
    assert m["sim_ref.dlib"]["value"] > 0.9
    assert m["copy_paste.dlib"]["value"] > 0.0
    rows = [json.loads(line) for f in sorted(scored.glob("cases*.jsonl")) for line in f.read_text().splitlines()]
    assert sorted(r["case_id"] for r in rows) == sorted(r["case_id"] for r in records)
    assert all(r["generation"]["layout"] == "mbench" for r in rows)
