"""OmniContext's numbers from per-case judge scores: Overall per case, means per task type and subset.

As ``omnicontext/calculate_statistics.py`` (VectorSpaceLab/OmniGen2 @ 0f72fa9) computes them:

* per case, ``overall = sqrt(PF * SC)`` (geometric mean of the two 0-10 scores);
* per task type, the plain means of PF, SC and overall over the cases of that type (so the reported
  Overall is the mean of per-case geometric means, *not* the geometric mean of the mean PF and SC);
* ``Average`` = the unweighted mean of the per-task-type means;
* only cases whose ``instruction_language`` is the selected language (default ``en``) count.

Differences, recorded per group: a case whose answer could not be parsed is **left out and counted**
(``failed``) where the official script would have scored a random guess; a case with no generated image
is counted as ``missing`` (the official script skips it silently).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["JUDGE_METRICS", "JudgeScore", "aggregate_judge", "overall_score"]

JUDGE_METRICS: tuple[str, ...] = ("prompt_following", "subject_consistency", "overall")


def overall_score(pf: float, sc: float) -> float:
    """``sqrt(pf * sc)``, OmniContext's per-case Overall.

    Example:
        >>> overall_score(4.0, 9.0)
        6.0
    """
    if not (0 <= pf <= 10 and 0 <= sc <= 10):
        raise ValueError(f"PF and SC must be in [0, 10], got {pf}, {sc}")
    return math.sqrt(pf * sc)


@dataclass(frozen=True)
class JudgeScore:
    """One case's judged scores (``None`` where the judge gave no parseable score)."""

    case_id: str
    task_type: str
    prompt_following: float | None
    subject_consistency: float | None
    language: str = "en"
    missing: bool = False

    @property
    def ok(self) -> bool:
        return not self.missing and self.prompt_following is not None and self.subject_consistency is not None

    @property
    def overall(self) -> float | None:
        if not self.ok:
            return None
        return overall_score(float(self.prompt_following), float(self.subject_consistency))  # type: ignore[arg-type]


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _group(scores: Sequence[JudgeScore]) -> dict[str, Any]:
    ok = [s for s in scores if s.ok]
    entry: dict[str, Any] = {
        "n": len(ok),
        "failed": sum(1 for s in scores if not s.ok and not s.missing),
        "missing": sum(1 for s in scores if s.missing),
    }
    entry["prompt_following"] = _mean([float(s.prompt_following) for s in ok])  # type: ignore[arg-type]
    entry["subject_consistency"] = _mean([float(s.subject_consistency) for s in ok])  # type: ignore[arg-type]
    entry["overall"] = _mean([float(s.overall) for s in ok])  # type: ignore[arg-type]
    return entry


def aggregate_judge(scores: Iterable[JudgeScore], *, subsets: Mapping[str, Sequence[str]] | None = None,
                    language: str | None = "en") -> dict[str, Any]:
    """Per task type, per named subset (a preset: a list of task types) and the OmniContext ``average``.

    Args:
        scores: one per case.
        subsets: ``{name: task types}``; each gets the unweighted mean of its task types' means, as the
            official ``Average`` line does for all task types.
        language: keep only cases in this instruction language (``None`` keeps all).

    Returns:
        ``{"task_types": {tt: entry}, "subsets": {name: entry}, "average": entry, "language": ...,
        "excluded_language": k}`` where an entry holds ``prompt_following``, ``subject_consistency``,
        ``overall`` (``None`` when no case counted) and the counts ``n``, ``failed``, ``missing``.
    """
    all_scores = list(scores)
    kept = [s for s in all_scores if language is None or s.language == language]
    by_type: dict[str, list[JudgeScore]] = {}
    for s in sorted(kept, key=lambda s: (s.task_type, s.case_id)):
        by_type.setdefault(s.task_type, []).append(s)
    task_types = {tt: _group(group) for tt, group in sorted(by_type.items())}

    def average(types: Sequence[str]) -> dict[str, Any]:
        present = [task_types[t] for t in types if t in task_types]
        entry: dict[str, Any] = {"task_types": [t for t in types if t in task_types]}
        for key in ("n", "failed", "missing"):
            entry[key] = sum(int(e[key]) for e in present)
        for metric in JUDGE_METRICS:
            vals = [e[metric] for e in present if e[metric] is not None]
            entry[metric] = _mean(vals) if vals and len(vals) == len(present) else None
        return entry

    out: dict[str, Any] = {
        "task_types": task_types,
        "subsets": {name: average(list(types)) for name, types in (subsets or {}).items()},
        "average": average(list(task_types)),
        "language": language,
        "excluded_language": len(all_scores) - len(kept),
    }
    return out
