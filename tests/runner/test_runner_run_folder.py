"""The run folder's files: torn rows, the last-row rule, shard names, the one schema (jsonschema), row ids."""
from __future__ import annotations

import copy
import json
import os
import stat
from pathlib import Path

import pytest

from multiid_bench.data.loaders import InvalidRecord
from multiid_bench.errors import BadInputError
from multiid_bench.runner.run_folder import (
    append_row, generations_file, load_schema, read_generations, read_rows, repair_tail, row_files, rows_file,
    schema_errors, unique_record_ids, validate_results, validate_row, write_json,
)
from multiid_bench.runner.shard import Shard


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


def test_last_row_of_a_case_wins_and_shards_merge(tmp_path: Path) -> None:
    a, b = rows_file(tmp_path, Shard(0, 2)), rows_file(tmp_path, Shard(1, 2))
    assert (a.name, b.name) == ("cases.shard-000-of-002.jsonl", "cases.shard-001-of-002.jsonl")
    append_row(a, {"case_id": "1", "v": 1})
    append_row(b, {"case_id": "2", "v": 2})
    append_row(b, {"case_id": "1", "v": 3})  # a redo of case 1, written later
    append_row(rows_file(tmp_path), {"case_id": "0", "v": 0})
    assert row_files(tmp_path) == sorted([a, b, tmp_path / "cases.jsonl"])
    assert read_rows(tmp_path) == [{"case_id": "0", "v": 0}, {"case_id": "1", "v": 3}, {"case_id": "2", "v": 2}]
    g = generations_file(tmp_path, Shard(1, 2))
    append_row(g, {"case_id": "x", "status": "failed"})
    append_row(g, {"case_id": "x", "status": "ok"})
    assert g.name == "generations.shard-001-of-002.jsonl" and read_generations(tmp_path)["x"]["status"] == "ok"


def test_record_ids_are_unique_and_keep_free_ids() -> None:
    recs = [InvalidRecord("b.jsonl", "a", "id", "duplicate id", 3), InvalidRecord("b.jsonl", "z", "refs", "bad", 4),
            InvalidRecord("b.jsonl", None, "<line>", "not JSON", 5), InvalidRecord("b.jsonl", "a", "id", "dup", 3)]
    assert unique_record_ids(recs, ["a", "b"]) == ["a@line-3", "z", "invalid-record@line-5", "a@line-3-2"]


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
    for part in ("'failed' is a required property", "'loose' is not one of", "'p9'", "is too short"):
        assert part in msg, msg


def test_schema_takes_exclusions_other_subsets_and_judge_metrics() -> None:
    d = copy.deepcopy(MINIMAL)
    d["excluded"] = {"paper": [{"case_id": "c1", "metrics": ["sim_gt.arcface"], "reason": "grayscale GT"}]}
    d["counts"]["excluded"] = {"paper": 1, "strict": 0}
    d["metrics"]["paper"]["single_character"] = {"overall": {"value": 7.5, "n": 3, "ci95": None, "statistic": "mean"}}
    assert schema_errors(d) == []
    d["excluded"]["paper"][0].pop("reason")
    assert schema_errors(d) == ["$['excluded']['paper'][0]: 'reason' is a required property"]
    row = {"row_schema": 1, "case_id": "c1", "status": "ok", "general": {"clip_t": 0.3, "prompt_following": 8.0},
           "scores": {"judge": {"qwen": {"prompt_following": 8.0, "raw": "..."}}}}
    validate_row(row)
    with pytest.raises(BadInputError, match="'maybe' is not one of"):
        validate_row({**row, "status": "maybe"})


def test_files_are_written_with_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "results.json", MINIMAL)
        append_row(tmp_path / "cases.jsonl", {"case_id": "a"})
    finally:
        os.umask(old)
    for name in ("results.json", "cases.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    assert json.loads((tmp_path / "results.json").read_text()) == MINIMAL


def test_git_commit_from_loose_packed_and_detached_refs(tmp_path: Path) -> None:
    from multiid_bench.runner.provenance import git_commit, redact_argv

    git = tmp_path / "repo" / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    module = tmp_path / "repo" / "pkg" / "mod.py"
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "packed-refs").write_text("# pack-refs\n" + "a" * 40 + " refs/heads/main\n")
    assert git_commit(module) == "a" * 40
    (git / "refs" / "heads" / "main").write_text("b" * 40 + "\n")  # a loose ref wins over the packed one
    assert git_commit(module) == "b" * 40
    (git / "HEAD").write_text("c" * 40 + "\n")
    assert git_commit(module) == "c" * 40
    assert git_commit(tmp_path / "elsewhere" / "mod.py") is None
    assert redact_argv(["x", "--hf-token=abc", "--seed=3", "OPENAI_API_KEY=sk"]) == [
        "x", "--hf-token=***", "--seed=3", "OPENAI_API_KEY=***"]
