"""Row files survive a killed writer; results.json is checked against its schema."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from multiid_bench.errors import BadInputError
from multiid_bench.runner.results import append_row, load_schema, read_rows, repair_tail, validate_results


def test_torn_last_row_is_cut_and_ignored(tmp_path: Path) -> None:
    p = tmp_path / "cases.jsonl"
    append_row(p, {"case_id": "a", "status": "ok"})
    append_row(p, {"case_id": "b", "status": "ok"})
    with p.open("a") as f:
        f.write('{"case_id": "c", "sta')  # the process died mid-write
    assert [r["case_id"] for r in read_rows([p])] == ["a", "b"]
    removed = repair_tail(p)
    assert removed == len('{"case_id": "c", "sta')
    append_row(p, {"case_id": "c", "status": "failed"})
    assert [r["case_id"] for r in read_rows([p])] == ["a", "b", "c"]
    assert repair_tail(p) == 0


def test_first_row_of_a_case_wins_across_files(tmp_path: Path) -> None:
    a, b = tmp_path / "x.jsonl", tmp_path / "y.jsonl"
    append_row(a, {"case_id": "1", "v": 1})
    append_row(b, {"case_id": "1", "v": 2})
    assert read_rows([a, b]) == [{"case_id": "1", "v": 1}]


MINIMAL = {
    "schema_version": 1, "model": "m", "bench": {"id": "b", "manifest_sha256": "x", "n_cases": 1},
    "protocol": "strict", "profile": {}, "config": {}, "reportable": True, "mbench_version": "0", "packages": {},
    "weights": {"dlib": "ab"}, "counts": {"expected": 1, "evaluated": 1, "failed": 0}, "work": {}, "created": "t",
    "metrics": {"paper": {"all": {"sim_gt.dlib": {"value": 0.5, "n": 1, "ci95": None, "statistic": "iqr_trimmed_mean"}}},
                "strict": {"p1": {"sim_gt.dlib": {"value": None, "n": 0, "ci95": [0.1, 0.2], "statistic": "mean"}}}},
}


def test_schema_accepts_valid_and_lists_violations() -> None:
    assert load_schema()["properties"]["schema_version"]["const"] == 1
    validate_results(MINIMAL)
    bad = copy.deepcopy(MINIMAL)
    del bad["counts"]["failed"]
    bad["protocol"] = "loose"
    bad["metrics"]["strict"]["p9"] = {}
    bad["metrics"]["paper"]["all"]["sim_gt.dlib"]["ci95"] = [0.1]
    with pytest.raises(BadInputError) as e:
        validate_results(bad)
    msg = str(e.value)
    for part in ("'failed'", "loose", "p9", "fewer than 2"):
        assert part in msg
    json.dumps(MINIMAL)  # the fixture itself is plain JSON
