"""Who the judge was, and when two judges count as the same for ranking.

A PF/SC/Overall number is a property of the judge as much as of the generator: GPT-4.1 and Qwen2.5-VL-7B
rate the same image differently, and so do the ``omnicontext`` and ``face-identity`` SC prompts. So a
judged row carries a :class:`JudgeIdentity` (backend, model, family, size, revision, prompt variant and
version) and :func:`judge_differences` is the one rule that says why two of them may not be ranked
together (``docs/omnicontext.md``, "Which judged rows are ranked together"):

* the model **family** must match (``gpt-4.1`` vs ``Qwen2.5-VL``: never);
* **size**, **revision** (a 7+ character commit prefix matches the full commit) and **backend** must match
  where *both* sides state them; a side that states nothing (the paper states no size, revision or backend; an HTTP judge without ``--judge-revision`` is
  ``unpinned``) is not checked on that field;
* the **prompt variant** must match where both state it, and then the prompt **version** (a hash of every
  template) where both state it.

Judge ids are what :class:`~multiid_bench.judge.scorer.VlmJudge` records: ``<backend>:<model>@<revision>``
(``http:gpt-4.1@unpinned``, ``transformers:qwen2.5-vl-7b-instruct@cc59489…``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["JudgeIdentity", "judge_differences", "judge_from_card", "judge_from_id", "judge_record", "model_family"]

_SIZE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)b(?![a-z0-9])")
_DROP = re.compile(r"-(instruct|chat|it|hf|awq|gptq|fp8|int4|int8)(?=-|$)")
#: Family spellings that are one family (the paper writes "Qwen2.5-VL", the Hub "Qwen2.5-VL-7B-Instruct").
_FAMILY_ALIASES = {"qwen25vl": "qwen2.5-vl"}


def model_family(model: str) -> tuple[str, str | None]:
    """``(family, size)`` of a model name: organisation, size token and tuning suffixes dropped.

    Example:
        >>> model_family("Qwen/Qwen2.5-VL-7B-Instruct"), model_family("qwen2.5-vl-72b-instruct")
        (('qwen2.5-vl', '7b'), ('qwen2.5-vl', '72b'))
        >>> model_family("gpt-4.1"), model_family("Qwen2.5-VL")
        (('gpt-4.1', None), ('qwen2.5-vl', None))
    """
    name = model.strip().rsplit("/", 1)[-1].lower().replace("_", "-")
    size_match = _SIZE.search(name)
    size = f"{size_match.group(1)}b" if size_match else None
    if size_match:
        name = (name[: size_match.start()] + name[size_match.end():]).replace("--", "-").strip("-")
    name = _DROP.sub("", name).strip("-")
    squashed = re.sub(r"[^a-z0-9]", "", name)
    return _FAMILY_ALIASES.get(squashed, name), size


@dataclass(frozen=True)
class JudgeIdentity:
    """What is known about a judge; ``None`` = not stated (not checked by :func:`judge_differences`)."""

    model: str
    backend: str | None = None
    revision: str | None = None
    prompt_variant: str | None = None
    prompt_version: str | None = None

    @property
    def family(self) -> str:
        return model_family(self.model)[0]

    @property
    def size(self) -> str | None:
        return model_family(self.model)[1]

    @property
    def name(self) -> str:
        """The model as a reader knows it: ``gpt-4.1``, ``Qwen2.5-VL-7B-Instruct``, ``Qwen2.5-VL``."""
        return self.model.rsplit("/", 1)[-1]

    def text(self) -> str:
        """One line for tables and reports: ``Qwen2.5-VL-7B-Instruct@cc594898 (http), prompts face-identity``."""
        out = self.name + (f"@{self.revision[:8]}" if self.revision else "")
        if self.backend:
            out += f" ({self.backend})"
        if self.prompt_variant:
            out += f", prompts {self.prompt_variant}"
        return out


def _revision(text: str | None) -> str | None:
    return None if not text or text in ("unpinned", "None") else text


def judge_from_id(judge_id: str, *, prompt_variant: str | None = None,
                  prompt_version: str | None = None) -> JudgeIdentity:
    """A judge id as recorded in ``results.json`` (``http:gpt-4.1@unpinned``) -> :class:`JudgeIdentity`.

    The prompt variant defaults to the prefix of ``prompt_version`` (``face-identity-<hash>``).

    Example:
        >>> j = judge_from_id("http:Qwen/Qwen2.5-VL-7B-Instruct@unpinned", prompt_version="face-identity-0123456789ab")
        >>> (j.backend, j.family, j.size, j.revision, j.prompt_variant)
        ('http', 'qwen2.5-vl', '7b', None, 'face-identity')
    """
    backend, sep, rest = judge_id.partition(":")
    if not sep:
        backend, rest = "", judge_id
    model, _, revision = rest.rpartition("@") if "@" in rest else (rest, "", "")
    if prompt_variant is None and prompt_version:
        prompt_variant = prompt_version.rsplit("-", 1)[0] if "-" in prompt_version else prompt_version
    return JudgeIdentity(model=model, backend=backend or None, revision=_revision(revision),
                         prompt_variant=prompt_variant, prompt_version=prompt_version)


def judge_from_card(card: Mapping[str, Any]) -> JudgeIdentity | None:
    """The judge of a run from its ``vlm-judge`` scorer card (``results.json["scorers"]["vlm-judge"]["card"]``)
    or from a metric entry (``judge`` + ``prompt_version``); ``None`` when it names no judge."""
    judge_id = card.get("judge")
    if not judge_id:
        return None
    return judge_from_id(str(judge_id), prompt_variant=card.get("prompt_variant"),
                         prompt_version=card.get("prompt_version"))


def _same_revision(a: str, b: str) -> bool:
    """Equal, or one a git short hash (7+ characters) of the other."""
    short, full = sorted((a.lower(), b.lower()), key=len)
    return short == full or (len(short) >= 7 and full.startswith(short))


def judge_differences(a: JudgeIdentity | None, b: JudgeIdentity | None) -> list[str]:
    """Why rows judged by ``a`` and by ``b`` may not be ranked together (empty: they may).

    A side without a judge (``None``: a MultiID-Bench row) is not checked. See the module docstring for
    the rule.

    Example:
        >>> judge_differences(judge_from_id("http:gpt-4.1@unpinned"), JudgeIdentity("Qwen2.5-VL"))
        ['judge gpt-4.1 vs Qwen2.5-VL']
        >>> judge_differences(judge_from_id("http:Qwen/Qwen2.5-VL-7B-Instruct@unpinned"), JudgeIdentity("Qwen2.5-VL"))
        []
    """
    if a is None or b is None:
        return []
    out: list[str] = []
    if a.family != b.family or (a.size and b.size and a.size != b.size):
        out.append(f"judge {a.name} vs {b.name}")
    if a.revision and b.revision and not _same_revision(a.revision, b.revision):
        out.append(f"judge revision {a.revision[:12]} vs {b.revision[:12]}")
    if a.backend and b.backend and a.backend != b.backend:
        out.append(f"judge backend {a.backend} vs {b.backend}")
    if a.prompt_variant and b.prompt_variant and a.prompt_variant != b.prompt_variant:
        out.append(f"judge prompts {a.prompt_variant} vs {b.prompt_variant}")
    elif a.prompt_version and b.prompt_version and a.prompt_version != b.prompt_version:
        out.append(f"judge prompt version {a.prompt_version} vs {b.prompt_version}")
    return out


def judge_record(card: Mapping[str, Any], sessions: "list[Mapping[str, int] | None]" = ()) -> dict[str, Any]:
    """``results.json["judge"]``: who judged (id, backend, model, family, size, revision, prompt variant and
    version) and what it cost, summed over the run's sessions (questions sent, requests incl. re-asks,
    answers from the cache, cases failed). The leaderboard's comparability key reads this record."""
    ident = judge_from_card(card)
    totals: dict[str, int] = {}
    for counters in sessions:
        for k, v in (counters or {}).items():
            totals[k] = totals.get(k, 0) + int(v)
    if ident is None:
        return {"id": None, "work": totals}
    return {"id": card.get("judge"), "backend": ident.backend, "model": ident.model, "family": ident.family,
            "size": ident.size, "revision": ident.revision, "prompt_variant": ident.prompt_variant,
            "prompt_version": ident.prompt_version, "work": totals}
