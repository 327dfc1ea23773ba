"""The ``vlm-judge`` scorer: OmniContext's prompt following (PF), subject consistency (SC) and Overall.

For each case the judge is asked twice (a PF prompt and an SC prompt, :mod:`.prompts`), with the
input images followed by the generated image (:func:`.backends.prepare_judge_images`). Each
answer is parsed (:mod:`.parse`); an unparseable answer is asked again, at most ``max_attempts``
times in all (a greedy local model gives the same answer again, so it is asked once), and if it still does
not parse the case is a **failure** carrying the raw answers -- never a 0 and never a random guess (the
official script guesses). Overall per case is ``sqrt(PF * SC)``; means per task type and subset come from
:func:`.stats.aggregate_judge`.

Answers are cached on disk by (sha256 of every image file, prompt version and the full prompt's hash, judge
model + revision, decoding settings, image preparation), so re-scoring the same images is free.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, Sequence

from multiid_bench.errors import JudgeUnreachableError
from multiid_bench.judge.backends import IMAGE_PREP_VERSION, Answer, JudgeRequest, prepare_judge_images
from multiid_bench.judge.parse import parse_score
from multiid_bench.judge.prompts import PromptSet, get_prompt_set
from multiid_bench.judge.stats import JUDGE_METRICS, JudgeScore, overall_score

__all__ = ["JudgeBackend", "JudgeCache", "JudgeItem", "JudgeResult", "VlmJudge", "with_scene"]

log = logging.getLogger(__name__)

KINDS: tuple[str, str] = ("prompt_following", "subject_consistency")


class JudgeBackend(Protocol):
    """What the judge needs from a backend (see :mod:`.backends`)."""

    deterministic: bool

    @property
    def judge_id(self) -> str: ...

    def describe(self) -> dict[str, Any]: ...

    def load(self, device: str = "cpu") -> None: ...

    def ask(self, requests: Sequence[JudgeRequest]) -> list[Answer]: ...


def with_scene(task_type: str) -> bool:
    """OmniContext's rule: a task whose name contains ``scene`` gets the scene prompts."""
    return "scene" in task_type


@dataclass(frozen=True)
class JudgeItem:
    """One case to judge: its instruction, input images and the generated image (``None`` = not generated)."""

    case_id: str
    task_type: str
    instruction: str
    inputs: tuple[Path, ...]
    output: Path | None
    language: str = "en"


@dataclass
class JudgeResult:
    """One case's verdict; ``answers[kind]`` keeps the raw text, attempts and how it was parsed."""

    case_id: str
    task_type: str
    language: str
    status: str  # ok | failed | missing
    prompt_following: float | None = None
    subject_consistency: float | None = None
    reason: str | None = None
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def overall(self) -> float | None:
        if self.prompt_following is None or self.subject_consistency is None:
            return None
        return overall_score(self.prompt_following, self.subject_consistency)

    def score(self) -> JudgeScore:
        return JudgeScore(self.case_id, self.task_type, self.prompt_following, self.subject_consistency,
                          self.language, missing=self.status == "missing")

    def metrics(self) -> dict[str, float | None]:
        """The per-case metric values for a results row (``None`` where not judged)."""
        return {"prompt_following": self.prompt_following, "subject_consistency": self.subject_consistency,
                "overall": self.overall}

    def to_dict(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "task_type": self.task_type, "language": self.language,
                "status": self.status, **self.metrics(), "reason": self.reason, "answers": self.answers}


class JudgeCache:
    """One small JSON file per answer under ``<root>/judge/<2 hex>/<key>.json`` (written atomically)."""

    def __init__(self, root: str | os.PathLike[str] | None) -> None:
        self.root = Path(root) / "judge" if root is not None else None

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if self.root is None:
            return None
        p = self._path(key)
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if self.root is None:
            return
        from multiid_bench._io import atomic_write_bytes

        atomic_write_bytes(self._path(key), json.dumps(value, sort_keys=True).encode())


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class VlmJudge:
    """The judge scorer (see the module docstring).

    Args:
        backend: a :class:`JudgeBackend` (``QwenVLJudgeBackend`` or ``HttpJudgeBackend``).
        prompts: prompt variant: ``omnicontext`` (default), ``omnicontext-scene-pf`` or ``face-identity``.
        max_attempts: how often an unparseable or failed answer is asked in all (1-10; a deterministic
            backend is asked once for a parse failure, since it would answer the same).
        cache_root: cache folder root (``None`` = no cache).
    """

    scorer_id: ClassVar[str] = "vlm-judge"
    metrics: ClassVar[tuple[str, ...]] = JUDGE_METRICS
    version: ClassVar[str] = "1"

    def __init__(self, backend: JudgeBackend, *, prompts: str = "omnicontext", max_attempts: int = 3,
                 cache_root: str | os.PathLike[str] | None = None) -> None:
        if not 1 <= max_attempts <= 10:
            from multiid_bench.errors import ConfigError

            raise ConfigError(f"judge max_attempts must be 1-10, got {max_attempts}")
        self.backend = backend
        self.prompt_set: PromptSet = get_prompt_set(prompts)
        self.max_attempts = max_attempts
        self.cache = JudgeCache(cache_root)
        self.loaded = False
        #: questions: (case, PF|SC) sent to the backend; requests: sends incl. re-asks of unusable answers;
        #: cached: answered from the cache (never sent); failed: cases left without a usable score
        self.counters = {"questions": 0, "requests": 0, "cached": 0, "failed": 0}

    @property
    def card(self) -> dict[str, Any]:
        """What determines the numbers: judge model and revision, prompt version, decoding, image preparation."""
        return {"id": self.scorer_id, "version": self.version, "metrics": list(self.metrics),
                "judge": self.backend.judge_id, "backend": self.backend.describe(),
                "prompt_variant": self.prompt_set.name, "prompt_version": self.prompt_set.version,
                "prompt_sources": list(self.prompt_set.sources), "image_prep": IMAGE_PREP_VERSION,
                "max_attempts": self.max_attempts, "range": [0, 10],
                "overall": "per case sqrt(PF * SC), then mean per task type (OmniContext calculate_statistics.py)"}

    def load(self, device: str = "cpu") -> None:
        self.backend.load(device)
        self.loaded = True

    def _key(self, image_shas: Sequence[str], prompt: str) -> str:
        fields = {"v": self.version, "images": list(image_shas), "prompt_version": self.prompt_set.version,
                  "prompt_sha256": hashlib.sha256(prompt.encode()).hexdigest(), "judge": self.backend.judge_id,
                  "decode": {k: v for k, v in self.backend.describe().items() if k in ("max_tokens", "max_new_tokens", "temperature")},
                  "image_prep": IMAGE_PREP_VERSION}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def judge(self, items: Sequence[JudgeItem]) -> list[JudgeResult]:
        """Verdicts in item order; the backend is loaded on first need (``load`` for another device)."""
        results: list[JudgeResult] = []
        pending: list[tuple[JudgeResult, str, str, JudgeRequest]] = []  # (result, kind, cache key, request)
        for it in items:
            res = JudgeResult(it.case_id, it.task_type, it.language, "ok")
            results.append(res)
            if it.output is None or not Path(it.output).is_file():
                res.status, res.reason = "missing", "no generated image" if it.output is None else f"generated image {it.output} not found"
                continue
            try:
                images = prepare_judge_images(it.inputs, it.output)
                shas = [_file_sha256(Path(p)) for p in (*it.inputs, it.output)]
            except OSError as e:
                res.status, res.reason = "failed", f"image unreadable: {e}"
                continue
            for kind in KINDS:
                prompt = self.prompt_set.build(kind, it.instruction, with_scene=with_scene(it.task_type))
                key = self._key(shas, prompt)
                hit = self.cache.get(key)
                if hit is not None and isinstance(hit.get("score"), (int, float)):
                    setattr(res, kind, float(hit["score"]))
                    res.answers[kind] = {"raw": hit.get("raw"), "attempts": 0, "source": hit.get("source"), "cached": True}
                    self.counters["cached"] += 1
                else:
                    pending.append((res, kind, key, JudgeRequest(prompt, images)))
        if pending and not self.loaded:
            self.load("cpu")
        self.counters["questions"] += len(pending)
        for attempt in range(1, self.max_attempts + 1):
            if not pending:
                break
            answers = self.backend.ask([req for _, _, _, req in pending])
            self.counters["requests"] += len(pending)
            if attempt == 1 and answers and all(a.unreachable for a in answers):
                raise JudgeUnreachableError(
                    f"the VLM judge {self.backend.judge_id} cannot be reached: {answers[0].error}. No case of this "
                    "batch was judged; rows written before are kept. Fix: start the judge server (or correct "
                    "--judge-url), then run the same command with the same --out to resume: every case without "
                    "a usable judge answer is asked again, cached answers are reused.")
            retry: list[tuple[JudgeResult, str, str, JudgeRequest]] = []
            for (res, kind, key, req), ans in zip(pending, answers):
                parsed = parse_score(ans.text) if ans.error is None else None
                rec = {"raw": ans.text, "attempts": attempt, "cached": False,
                       "source": parsed.source if parsed else "none",
                       "error": ans.error if parsed is None else parsed.error}
                res.answers[kind] = rec
                if parsed is not None and parsed.ok:
                    setattr(res, kind, parsed.score)
                    self.cache.put(key, {"raw": ans.text, "score": parsed.score, "source": parsed.source,
                                         "judge": self.backend.judge_id, "prompt_version": self.prompt_set.version})
                elif ans.error is not None or not self.backend.deterministic:
                    retry.append((res, kind, key, req))
            pending = retry if attempt < self.max_attempts else []
        for res in results:
            if res.status == "ok" and (res.prompt_following is None or res.subject_consistency is None):
                res.status = "failed"
                bad = [k for k in KINDS if getattr(res, k) is None]
                res.reason = "; ".join(
                    f"judge answer for {k} unusable after {res.answers.get(k, {}).get('attempts', 0)} attempt(s): "
                    f"{res.answers.get(k, {}).get('error') or 'no score'}" for k in bad)
                self.counters["failed"] += 1
        return results
