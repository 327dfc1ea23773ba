"""The VLM judge: OmniContext's prompt following (PF), subject consistency (SC) and Overall, 0-10.

One package for everything that decides a judge number (``docs/omnicontext.md``):

* :mod:`.prompts` -- OmniContext's prompt templates and the paper's face-identity SC variant;
* :mod:`.parse` -- reading a score out of the judge's text (no score is ever guessed);
* :mod:`.backends` -- where answers come from (local Qwen2.5-VL through transformers, or any
  OpenAI-compatible server) and the image preparation both share;
* :mod:`.scorer` -- :class:`VlmJudge`: cache, bounded retries, failure rows;
* :mod:`.stats` -- Overall per case and the means per task type, as OmniContext computes them;
* :mod:`.settings` -- judge settings as data (what a run records) and building a judge from them;
* :mod:`.identity` -- who the judge is (backend, model, size, revision, prompt variant) and when two
  judges count as the same for ranking (the comparability rule).

Importing this package imports no torch; the local model loads in ``load``.
"""
from __future__ import annotations

from multiid_bench.judge.backends import (
    DEFAULT_QWEN_WEIGHTS,
    IMAGE_PREP_VERSION,
    Answer,
    HttpJudgeBackend,
    JudgeRequest,
    QwenVLJudgeBackend,
    prepare_judge_images,
)
from multiid_bench.judge.identity import JudgeIdentity, judge_differences, judge_from_id
from multiid_bench.judge.parse import ParsedScore, parse_score
from multiid_bench.judge.prompts import PROMPT_SETS, PromptSet, get_prompt_set
from multiid_bench.judge.scorer import JudgeBackend, JudgeCache, JudgeItem, JudgeResult, VlmJudge, with_scene
from multiid_bench.judge.settings import JUDGE_BACKENDS, JUDGE_DEFAULTS, build_judge, judge_settings, settings_for_run
from multiid_bench.judge.stats import JUDGE_METRICS, JudgeScore, aggregate_judge, overall_score

__all__ = [
    "DEFAULT_QWEN_WEIGHTS",
    "IMAGE_PREP_VERSION",
    "JUDGE_BACKENDS",
    "JUDGE_DEFAULTS",
    "JUDGE_METRICS",
    "PROMPT_SETS",
    "Answer",
    "HttpJudgeBackend",
    "JudgeBackend",
    "JudgeCache",
    "JudgeIdentity",
    "JudgeItem",
    "JudgeRequest",
    "JudgeResult",
    "JudgeScore",
    "ParsedScore",
    "PromptSet",
    "QwenVLJudgeBackend",
    "VlmJudge",
    "aggregate_judge",
    "build_judge",
    "get_prompt_set",
    "judge_differences",
    "judge_from_id",
    "judge_settings",
    "overall_score",
    "parse_score",
    "prepare_judge_images",
    "settings_for_run",
    "with_scene",
]
