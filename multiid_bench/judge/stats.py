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

__all__ = ["JUDGE_METRICS", "JudgeScore", "add_judge_metrics", "aggregate_judge", "judge_summary_lines", "judge_table",
           "overall_score", "unjudged_answers"]

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


# --------------------------------------------------------------------------- results.json / summary


def unjudged_answers(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """``{case id: number of judge answers (PF, SC) without a usable score}`` over run rows.

    A judged row (its ``general`` holds ``overall``) with ``overall`` null had a failed or unparseable
    answer; a resumed run judges exactly these cases again. Rows the judge never saw (no generated
    image, not applicable) are not listed.

    Example:
        >>> unjudged_answers([{"case_id": "a", "general": {"prompt_following": 7.0, "subject_consistency": None, "overall": None}},
        ...                   {"case_id": "b", "general": {"prompt_following": 7.0, "subject_consistency": 6.0, "overall": 6.48}},
        ...                   {"case_id": "c", "general": {}}])
        {'a': 1}
    """
    out: dict[str, int] = {}
    for r in rows:
        general = r.get("general") or {}
        if "overall" in general and general["overall"] is None and r.get("status") != "not_applicable":
            out[str(r["case_id"])] = sum(general.get(k) is None for k in ("prompt_following", "subject_consistency"))
    return out


def _task_type_of(case_id: str) -> str | None:
    """OmniContext case ids are ``<task_type>__<key>`` (multiid_bench.data.omnicontext)."""
    from multiid_bench.data.omnicontext import TASK_TYPES

    prefix = case_id.split("__", 1)[0] if "__" in case_id else ""
    return prefix if prefix in TASK_TYPES else None


def _entry(values: Sequence[float], failed: int, missing: int, card: Mapping[str, Any], *,
           strict: bool, resamples: int, seed: int) -> dict[str, Any]:
    e: dict[str, Any] = {"value": _mean(list(values)), "n": len(values), "ci95": None, "statistic": "mean",
                         "failed": failed, "missing": missing, "judge": card.get("judge"),
                         "prompt_version": card.get("prompt_version")}
    if strict and values:
        from multiid_bench.metrics.stats import bootstrap_ci

        ci = bootstrap_ci(values, n_resamples=resamples, seed=seed)
        e["ci95"] = list(ci) if ci else None
    return e


def add_judge_metrics(metrics: dict[str, Any], rows: Iterable[Mapping[str, Any]], judge_status: Mapping[str, Any] | None,
                      *, bootstrap_resamples: int = 2000, bootstrap_seed: int = 0) -> None:
    """Add PF/SC/Overall per OmniContext task type (and ``all`` = OmniContext's ``Average``) to ``metrics``.

    ``metrics[protocol][task_type][metric]``: the plain mean over judged cases (both protocols; strict adds
    a bootstrap 95% CI), with ``failed`` (judge answer unusable) and ``missing`` (no judge verdict, e.g. no
    generated image) counts, the judge id and prompt version. ``metrics[protocol]["all"][metric]`` is the
    unweighted mean of the task-type means (``n`` = cases behind it) and lists what is *not* in it:
    ``not_applicable`` (cases the method cannot do), ``task_types_not_applicable`` (task types with no
    applicable case at all) and ``unknown_task_types`` (case ids whose prefix is no OmniContext task type).
    Nothing is added when no row of an OmniContext case exists or the run had no judge.
    """
    if not judge_status or judge_status.get("status") != "ok":
        return
    card = judge_status.get("card") or {}
    per_type: dict[str, dict[str, Any]] = {}
    not_applicable: dict[str, int] = {}
    unknown: set[str] = set()
    for r in sorted(rows, key=lambda r: str(r["case_id"])):
        tt = _task_type_of(str(r["case_id"]))
        if tt is None:
            if "__" in str(r["case_id"]) and "overall" in (r.get("general") or {}):
                unknown.add(str(r["case_id"]).split("__", 1)[0])
            continue
        if r.get("status") == "not_applicable":
            not_applicable[tt] = not_applicable.get(tt, 0) + 1
            continue
        g = per_type.setdefault(tt, {"values": {m: [] for m in JUDGE_METRICS}, "failed": 0, "missing": 0})
        general = r.get("general") or {}
        if "overall" not in general:
            g["missing"] += 1
        elif general["overall"] is None:
            g["failed"] += 1
        else:
            for m in JUDGE_METRICS:
                g["values"][m].append(float(general[m]))
    if not per_type and not not_applicable and not unknown:
        return
    for proto in ("paper", "strict"):
        block = metrics.setdefault(proto, {})
        strict = proto == "strict"
        means: dict[str, list[float]] = {m: [] for m in JUDGE_METRICS}
        complete = bool(per_type)
        for tt in sorted(per_type):
            g = per_type[tt]
            sub = block.setdefault(tt, {})
            for m in JUDGE_METRICS:
                sub[m] = _entry(g["values"][m], g["failed"], g["missing"], card, strict=strict,
                                resamples=bootstrap_resamples, seed=bootstrap_seed)
                sub[m]["not_applicable"] = not_applicable.get(tt, 0)
                if sub[m]["value"] is None:
                    complete = False
                else:
                    means[m].append(sub[m]["value"])
        allb = block.setdefault("all", {})
        for m in JUDGE_METRICS:
            allb[m] = {"value": _mean(means[m]) if complete else None,
                       "n": sum(len(g["values"][m]) for g in per_type.values()), "ci95": None, "statistic": "mean",
                       "failed": sum(g["failed"] for g in per_type.values()),
                       "missing": sum(g["missing"] for g in per_type.values()),
                       "not_applicable": sum(not_applicable.values()),
                       "task_types": sorted(per_type),
                       "task_types_not_applicable": sorted(set(not_applicable) - set(per_type)),
                       "unknown_task_types": sorted(unknown), "judge": card.get("judge"),
                       "prompt_version": card.get("prompt_version"),
                       "aggregation": "unweighted mean of the task-type means (OmniContext 'Average')"}


def judge_table(block: Mapping[str, Any]) -> tuple[str, list[str], list[list[str]], list[str]]:
    """``(title, header, rows, notes)`` of the PF/SC/Overall table of one protocol block (rows ``[]`` if the
    block holds no judge metrics): one row per task type and ``all`` (OmniContext's ``Average``), with n,
    failed, missing and not-applicable counts; the notes list task types left out of the average."""
    keys = [k for k in sorted(block) if k != "all" and "overall" in block[k]]
    allb = block.get("all") or {}
    if not keys and "overall" not in allb:
        return "", [], [], []
    first = (block[keys[0]] if keys else allb)["overall"]
    title = f"OmniContext (0-10), judge {first.get('judge')}, prompts {first.get('prompt_version')}"
    header = ["task type", "n", "failed", "missing", "N/A", "PF ↑", "SC ↑", "Overall ↑"]

    def cell(e: Mapping[str, Any]) -> str:
        return "-" if e.get("value") is None else f"{e['value']:.2f}"

    rows = []
    for k in [*keys, "all"]:
        b = block.get(k) or {}
        if "overall" not in b:
            continue
        o = b["overall"]
        rows.append([k, str(o["n"]), str(o.get("failed", 0)), str(o.get("missing", 0)), str(o.get("not_applicable", 0)),
                     cell(b["prompt_following"]), cell(b["subject_consistency"]), cell(o)])
    notes = []
    o = allb.get("overall") or {}
    if o.get("task_types_not_applicable"):
        notes.append("not applicable to this method (every case), not in the average: "
                     + ", ".join(o["task_types_not_applicable"]))
    if o.get("unknown_task_types"):
        notes.append("unknown task types (not OmniContext's), not in the average: " + ", ".join(o["unknown_task_types"]))
    return title, header, rows, notes


def judge_summary_lines(block: Mapping[str, Any]) -> list[str]:
    """Markdown lines of :func:`judge_table` for a protocol block holding judge metrics; [] if none."""
    title, header, rows, notes = judge_table(block)
    if not rows:
        return []
    return [f"{title}:", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(r) + " |" for r in rows], "", *[f"- {n}" for n in notes], *([""] if notes else [])]
