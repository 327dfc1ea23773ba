"""The judge is part of comparability (issue 24): the matching rules of docs/omnicontext.md, key by key.

The end-to-end view (two judged runs through leaderboard, report and compare) is
tests/e2e/test_omnicontext_judges.py; these are the rules on their own.
"""
from __future__ import annotations

from typing import Any

import pytest

from multiid_bench.judge.identity import JudgeIdentity, judge_differences, judge_from_id, model_family
from multiid_bench.leaderboard.comparability import RowKey, comparable_set, differences, paper_key, run_key
from multiid_bench.leaderboard.paper import normalise_subset, paper_table_for

QWEN7 = "http:Qwen/Qwen2.5-VL-7B-Instruct@cc594898137f460bfe9f0759e9844b3ce807cfb5"
PAPER_JUDGE = JudgeIdentity("Qwen2.5-VL", prompt_variant="face-identity")


@pytest.mark.parametrize(("a", "b", "why"), [
    (judge_from_id("http:gpt-4.1@unpinned"), PAPER_JUDGE, ["judge gpt-4.1 vs Qwen2.5-VL"]),
    (judge_from_id(QWEN7, prompt_variant="face-identity"), PAPER_JUDGE, []),  # the paper states no size/revision
    (judge_from_id("transformers:qwen2.5-vl-7b-instruct@cc594898137f"), judge_from_id(QWEN7), ["judge backend transformers vs http"]),
    (judge_from_id(QWEN7), judge_from_id("http:Qwen/Qwen2.5-VL-72B-Instruct@unpinned"),
     ["judge Qwen2.5-VL-7B-Instruct vs Qwen2.5-VL-72B-Instruct"]),
    (judge_from_id(QWEN7), judge_from_id("http:Qwen/Qwen2.5-VL-7B-Instruct@unpinned"), []),  # unpinned: not checked
    (judge_from_id(QWEN7), judge_from_id("http:Qwen/Qwen2.5-VL-7B-Instruct@0123456789abcdef"),
     ["judge revision cc594898137f vs 0123456789ab"]),
    (judge_from_id(QWEN7, prompt_version="omnicontext-aaaaaaaaaaaa"), PAPER_JUDGE, ["judge prompts omnicontext vs face-identity"]),
    (judge_from_id(QWEN7, prompt_version="face-identity-aaaaaaaaaaaa"),
     judge_from_id(QWEN7, prompt_version="face-identity-bbbbbbbbbbbb"),
     ["judge prompt version face-identity-aaaaaaaaaaaa vs face-identity-bbbbbbbbbbbb"]),
    (None, PAPER_JUDGE, []),  # a row without a judge (MultiID-Bench) is not checked
])
def test_judge_matching_rules(a: JudgeIdentity | None, b: JudgeIdentity, why: list[str]) -> None:
    assert judge_differences(a, b) == why


def test_model_family_reads_hub_names_manifest_ids_and_the_papers_label() -> None:
    assert model_family("Qwen/Qwen2.5-VL-7B-Instruct") == model_family("qwen2.5-vl-7b-instruct") == ("qwen2.5-vl", "7b")
    assert model_family("Qwen2.5-VL") == ("qwen2.5-vl", None)
    assert model_family("Qwen/Qwen2-VL-7B-Instruct")[0] != model_family("Qwen2.5-VL")[0]


def test_the_papers_table_1b_states_its_judge() -> None:
    key = paper_key("1b")
    assert key.judge is not None and key.judge.family == "qwen2.5-vl" and key.judge.size is None
    assert key.judge.revision is None and key.judge.backend is None and key.judge.prompt_variant == "face-identity"
    assert paper_key("1a").judge is None  # MultiID-Bench has no judge


def _results(judge: dict[str, Any] | None, *, legacy: bool = False) -> dict[str, Any]:
    entry = {"value": 5.0, "n": 3}
    data: dict[str, Any] = {"bench": {"id": "OmniGen2/OmniContext", "manifest_sha256": "ab" * 32}, "protocol": "paper",
                            "profile": {"name": "offline"}, "reportable": True,
                            "metrics": {"paper": {"single_character": {"overall": dict(entry)}}}}
    if judge is not None and legacy:  # results written before results.json["judge"]: the metric entries say it
        data["metrics"]["paper"]["single_character"]["overall"].update(judge=judge["id"],
                                                                       prompt_version=judge["prompt_version"])
    elif judge is not None:
        data["judge"] = judge
    return data


@pytest.mark.parametrize("legacy", [False, True])
def test_measured_runs_carry_their_judge_into_the_key(legacy: bool) -> None:
    gpt = run_key(_results({"id": "http:gpt-4.1@unpinned", "prompt_version": "face-identity-8138e8f6827c",
                            "prompt_variant": "face-identity"}, legacy=legacy), label="gpt", subset="single_character")
    qwen = run_key(_results({"id": QWEN7, "prompt_version": "face-identity-8138e8f6827c",
                             "prompt_variant": "face-identity"}, legacy=legacy), label="qwen", subset="single_character")
    assert differences(gpt, qwen) == ["judge gpt-4.1 vs Qwen2.5-VL-7B-Instruct"]
    assert differences(gpt, qwen, ignore=("judge",)) == []  # compare's [comparability] judge = false
    verdict = comparable_set([paper_key("1b"), gpt, qwen])
    assert verdict.ranked == [True, False, True]
    assert "not comparable with the paper's Table 1b (judge gpt-4.1 vs Qwen2.5-VL)" in verdict.reasons[1]


def test_one_subset_spelling_for_every_view() -> None:
    assert normalise_subset("single-character") == normalise_subset("single_character") == "single_character"
    assert paper_table_for("single-character", "average") == paper_table_for("single_character", None) == "1b"
    a = RowKey("a", subset="single-character")
    assert differences(a, RowKey("b", subset="single_character")) == []
    assert differences(a, RowKey("c", subset="p1")) == ["subset single-character vs p1"]


def test_subset_paper_defaults_to_the_papers_prompts_unless_asked() -> None:
    from multiid_bench.judge.settings import judge_settings, settings_for_run

    base = judge_settings(backend="http", url="http://127.0.0.1:1/v1", model="gpt-4.1")
    assert settings_for_run(base, ["paper"])["prompts"] == "face-identity"
    assert settings_for_run(base, ["single_character"])["prompts"] == "omnicontext"
    assert settings_for_run({**base, "prompts": "omnicontext"}, ["paper"])["prompts"] == "omnicontext"
    assert settings_for_run(None, ["paper"]) is None
