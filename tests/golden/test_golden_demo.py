"""Golden regression check: the offline demo scored with the deterministic ``dummy`` model must reproduce
the committed per-case numbers (1e-4) and pass ``mbench compare`` against the committed results.json.

A change to detection, alignment, embedding, matching or aggregation that moves any number fails here. If
the move is intended, regenerate with ``python tests/golden/make_golden.py``, bump the metric card version
and add a CHANGELOG line.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from multiid_bench.cli.main import main

GOLDEN = Path(__file__).resolve().parent / "demo_dummy_offline"
TOLERANCE = Path(__file__).resolve().parent / "tolerances_cpu.toml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from make_golden import ARGS  # type: ignore[import-not-found]

    out = tmp_path_factory.mktemp("golden") / "run"
    with pytest.raises(SystemExit) as e:
        main([*ARGS, "--out", str(out)])
    assert e.value.code == 0
    return out


def test_per_case_scores_match_golden(run_dir: Path) -> None:
    from make_golden import per_case  # type: ignore[import-not-found]

    expected = json.loads((GOLDEN / "cases.json").read_text())
    got = per_case(run_dir)
    assert sorted(got) == sorted(expected), "the demo bench's cases changed"
    worst = 0.0
    for cid, protocols in expected.items():
        for protocol, metrics in protocols.items():
            for name, want in metrics.items():
                have = got[cid][protocol][name]
                assert (want is None) == (have is None), (cid, protocol, name, want, have)
                if want is not None:
                    worst = max(worst, abs(have - want))
                    assert math.isclose(have, want, abs_tol=1e-4), (cid, protocol, name, want, have)
    assert worst < 1e-4


def test_compare_against_golden_passes_and_catches_a_moved_metric(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as e:
        main(["compare", str(GOLDEN / "results.json"), str(run_dir / "results.json"), "--tolerance", str(TOLERANCE)])
    assert e.value.code == 0
    moved = json.loads((GOLDEN / "results.json").read_text())
    moved["metrics"]["strict"]["all"]["sim_gt.dlib"]["value"] += 5e-4
    (tmp_path / "moved.json").write_text(json.dumps(moved))
    with pytest.raises(SystemExit) as e:
        main(["compare", str(tmp_path / "moved.json"), str(run_dir / "results.json"), "--tolerance", str(TOLERANCE)])
    assert e.value.code == 1


def test_pooled_blending_leaves_out_the_p1_placeholders(run_dir: Path) -> None:
    """The official run reports each subset on its own and writes 0.0 as p1 Blending; the pooled ``all`` view
    (ours) averages Blending over the multi-person cases only (blend cards 1.2.0), never those placeholders."""
    paper = json.loads((run_dir / "results.json").read_text())["metrics"]["paper"]
    golden = json.loads((GOLDEN / "results.json").read_text())["metrics"]["paper"]
    for key in ("blend_gt.dlib", "blend_ref.dlib"):
        assert paper["p1"][key]["value"] == 0.0  # the official placeholder, kept for p1 itself
        assert paper["all"][key]["n"] == paper["p2"][key]["n"] + paper["p3"][key]["n"] == 6
        assert math.isclose(paper["all"][key]["value"], golden["all"][key]["value"], abs_tol=1e-4)
        assert paper["all"][key]["value"] > 0.8  # 0.30 when the eleven p1 zeros were averaged in
