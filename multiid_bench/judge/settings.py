"""Judge settings as data (what ``RunConfig.judge`` holds and ``mbench evaluate --judge*`` sets) -> a judge.

Settings are plain JSON so they are fingerprinted with the run: another judge model, revision, prompt
variant or decoding budget is another run. API keys are never settings; only the *name* of the
environment variable that holds one is.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

from multiid_bench.errors import ConfigError

__all__ = ["DEFAULT_PROMPTS", "JUDGE_BACKENDS", "JUDGE_DEFAULTS", "PRESET_PROMPTS", "build_judge", "default_prompts",
           "judge_settings", "settings_for_run"]

log = logging.getLogger(__name__)

JUDGE_BACKENDS = ("transformers", "http")
JUDGE_DEFAULTS: Mapping[str, Any] = {
    "backend": "transformers",
    "weights": "qwen2.5-vl-7b-instruct",  # manifest id (judges.toml), pinned commit
    "model_dir": None,                     # or a local save_pretrained folder
    "url": None, "model": None, "revision": None, "api_key_env": "OPENAI_API_KEY",  # http backend
    "prompts": None,  # None: the bench's default (default_prompts): face-identity for --subset paper, else omnicontext
    "max_attempts": 3,
    "batch_size": 4,
    "max_new_tokens": 1024,
    "max_tokens": 1400,
    "temperature": 0.0,
    "workers": 8,
}


def judge_settings(**overrides: Any) -> dict[str, Any]:
    """Defaults plus ``overrides`` (``None`` values keep the default), checked.

    Raises:
        ConfigError: unknown key, unknown backend or prompt variant, or an HTTP judge without url/model.

    Example:
        >>> s = judge_settings(backend="http", url="http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-VL-7B-Instruct")
        >>> s["model"], s["weights"], s["prompts"]  # prompts: the bench's default, filled in per run
        ('Qwen/Qwen2.5-VL-7B-Instruct', None, None)
    """
    unknown = sorted(set(overrides) - set(JUDGE_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown judge setting(s) {unknown}; known: {', '.join(JUDGE_DEFAULTS)}")
    s = dict(JUDGE_DEFAULTS)
    s.update({k: v for k, v in overrides.items() if v is not None})
    if s["backend"] not in JUDGE_BACKENDS:
        raise ConfigError(f"--judge must be one of {', '.join(JUDGE_BACKENDS)}, got {s['backend']!r}")
    from multiid_bench.judge.prompts import PROMPT_SETS

    if s["prompts"] is not None and s["prompts"] not in PROMPT_SETS:
        raise ConfigError(f"--judge-prompts must be one of {', '.join(PROMPT_SETS)}, got {s['prompts']!r}")
    if s["backend"] == "http" and not (s["url"] and s["model"]):
        raise ConfigError("--judge http needs --judge-url (e.g. http://127.0.0.1:8000/v1) and --judge-model "
                          "(the served model name, e.g. Qwen/Qwen2.5-VL-7B-Instruct or gpt-4.1)")
    if s["model_dir"] is not None:
        s["model_dir"] = os.fspath(s["model_dir"])
    if s["backend"] == "http":  # the run records the served model, not the local judge's unused defaults
        s.update(weights=None, model_dir=None, batch_size=None, max_new_tokens=None)
    return s


#: ``--subset`` presets whose judge prompts differ from OmniContext's own: the paper's Table 1b used the SC
#: prompt its appendix prints as "Modified Prompt for OmniContext Evaluation (Face Identity Focus)".
PRESET_PROMPTS: Mapping[str, str] = {"paper": "face-identity"}
DEFAULT_PROMPTS = "omnicontext"


def default_prompts(subsets: Sequence[str] | None) -> tuple[str, str]:
    """The prompt variant a run gets when none is asked for, and why (a sentence for the console).

    Example:
        >>> default_prompts(["paper"])[0], default_prompts(["single_character"])[0], default_prompts(None)[0]
        ('face-identity', 'omnicontext', 'omnicontext')
    """
    for name in subsets or ():
        if name in PRESET_PROMPTS:
            return PRESET_PROMPTS[name], (
                f"--subset {name} reproduces the paper's Table 1b: judge prompts {PRESET_PROMPTS[name]} (SC = the "
                "paper's appendix-I face-identity prompt); pass --judge-prompts omnicontext for OmniContext's own")
    return DEFAULT_PROMPTS, f"judge prompts {DEFAULT_PROMPTS} (OmniContext's own, as its script sends them)"


def settings_for_run(settings: Mapping[str, Any] | None, subsets: Sequence[str] | None) -> dict[str, Any] | None:
    """``settings`` with the prompt variant filled in for this run's ``--subset`` names (said on the console
    when it is not OmniContext's own). ``None`` stays ``None`` (no judge)."""
    if settings is None:
        return None
    s = judge_settings(**dict(settings))
    if s["prompts"] is None:
        s["prompts"], why = default_prompts(subsets)
        if s["prompts"] != DEFAULT_PROMPTS:
            log.warning("%s", why)
    return s


def build_judge(settings: Mapping[str, Any], *, cache_dir: str | os.PathLike[str] | None = None,
                offline: bool | None = None, cache_root: str | os.PathLike[str] | None = None) -> Any:
    """A :class:`~multiid_bench.judge.scorer.VlmJudge` for ``settings`` (nothing loaded yet)."""
    from multiid_bench.judge.scorer import VlmJudge
    from multiid_bench.judge.backends import HttpJudgeBackend, QwenVLJudgeBackend

    s = judge_settings(**dict(settings))
    backend: Any
    if s["backend"] == "http":
        backend = HttpJudgeBackend(s["url"], s["model"], revision=s["revision"], api_key_env=s["api_key_env"],
                                   max_tokens=int(s["max_tokens"]), temperature=float(s["temperature"]),
                                   workers=int(s["workers"]))
    else:
        backend = QwenVLJudgeBackend(s["weights"], model_dir=s["model_dir"], batch_size=int(s["batch_size"]),
                                     max_new_tokens=int(s["max_new_tokens"]), cache_dir=cache_dir, offline=offline)
    return VlmJudge(backend, prompts=s["prompts"] or DEFAULT_PROMPTS, max_attempts=int(s["max_attempts"]), cache_root=cache_root)


def load_run_judge(config: Any) -> tuple[Any | None, dict[str, dict[str, Any]]]:
    """The run's judge (weights resolved, model not loaded) and its scorer status, or ``(None, {})``.

    Raises:
        MissingWeightsError: the judge was asked for but its weights are absent (exit 3 before any model
            loads; a judge metric is never silently dropped from a run that asked for it).
    """
    if getattr(config, "judge", None) is None:
        return None, {}
    from multiid_bench._io import cache_root

    judge = build_judge(config.judge, cache_dir=config.cache_dir, offline=config.offline,
                        cache_root=cache_root(config.cache_dir))
    card = judge.card  # resolves the model folder of a local judge
    return judge, {"vlm-judge": {"status": "ok", "reason": None, "card": card,
                                 "weights": {"model": card["judge"]}}}  # model id @ revision


def judge_general_items(judge: Any, items: Any, result: dict[str, dict[str, float | None]],
                        notes: dict[str, list[str]], failures: dict[str, str], device: str) -> None:
    """Judge the cases of ``items`` ((case, generated path, gt) triples) that carry ``meta["task_type"]``.

    Fills ``result[case_id]`` with ``prompt_following``, ``subject_consistency`` and ``overall`` (``None``
    when unusable), ``failures[case_id]`` with the reason and ``notes[case_id]`` with the raw answers.
    """
    from pathlib import Path

    from multiid_bench.judge.scorer import JudgeItem

    todo = [JudgeItem(c.id, str(c.meta["task_type"]), c.prompt, tuple(Path(r) for r in c.refs), Path(g),
                      str(c.meta.get("instruction_language") or "en"))
            for c, g, _ in items if c.meta.get("task_type") and g]
    if not todo:
        return
    if not judge.loaded:
        judge.load(device)
    for v in judge.judge(todo):
        result.setdefault(v.case_id, {}).update(v.metrics())
        if v.status != "ok":
            failures[v.case_id] = f"judge: {v.reason}"
            notes[v.case_id] = [f"judge {kind} raw answer: {str(a.get('raw'))[:500]!r}"
                                for kind, a in v.answers.items() if a.get("source") == "none"]
