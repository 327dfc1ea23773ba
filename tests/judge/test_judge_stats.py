"""OmniContext results never drop a task type silently: not-applicable and unknown task types are counted."""
from __future__ import annotations

from typing import Any

from multiid_bench.judge.stats import add_judge_metrics, judge_summary_lines, judge_table, unjudged_answers

STATUS = {"status": "ok", "card": {"judge": "http:gpt-4.1@unpinned", "prompt_version": "omnicontext-0123456789ab"}}


def _row(cid: str, pf: float | None, sc: float | None, status: str = "ok") -> dict[str, Any]:
    general = {} if status == "not_applicable" else {
        "prompt_following": pf, "subject_consistency": sc,
        "overall": None if pf is None or sc is None else (pf * sc) ** 0.5}
    return {"case_id": cid, "status": status, "general": general}


def test_not_applicable_and_unknown_task_types_are_counted_and_listed() -> None:
    rows = [_row("single_character__a", 4.0, 9.0), _row("single_character__b", 8.0, None, status="failed"),
            _row("single_character__c", None, None, status="not_applicable"),
            _row("single_object__d", None, None, status="not_applicable"),
            _row("single_object__e", None, None, status="not_applicable"),
            _row("mystery_type__f", 5.0, 5.0)]
    metrics: dict[str, Any] = {}
    add_judge_metrics(metrics, rows, STATUS, bootstrap_resamples=100)
    block = metrics["paper"]
    sc = block["single_character"]["overall"]
    assert (sc["value"], sc["n"], sc["failed"], sc["not_applicable"]) == (6.0, 1, 1, 1)
    allb = block["all"]["overall"]
    assert allb["value"] == 6.0 and allb["not_applicable"] == 3
    assert allb["task_types_not_applicable"] == ["single_object"] and allb["unknown_task_types"] == ["mystery_type"]
    title, header, table, notes = judge_table(block)
    assert "judge http:gpt-4.1@unpinned" in title and header[4] == "N/A"
    assert table[0] == ["single_character", "1", "1", "0", "1", "4.00", "9.00", "6.00"]
    assert notes == ["not applicable to this method (every case), not in the average: single_object",
                     "unknown task types (not OmniContext's), not in the average: mystery_type"]
    assert "- unknown task types (not OmniContext's), not in the average: mystery_type" in judge_summary_lines(block)
    assert unjudged_answers(rows) == {"single_character__b": 1}


def test_a_run_where_every_task_type_is_not_applicable_still_says_so() -> None:
    metrics: dict[str, Any] = {}
    add_judge_metrics(metrics, [_row("single_object__d", None, None, status="not_applicable")], STATUS)
    allb = metrics["paper"]["all"]["overall"]
    assert allb["value"] is None and allb["not_applicable"] == 1 and allb["task_types_not_applicable"] == ["single_object"]
