"""From per-case rows to the ``metrics`` block of ``results.json``, for both protocols.

Only rows are read, so metrics of a resumed, sharded or re-aggregated run equal an uninterrupted one's.

* ``paper``: per (subset, face model, metric) the IQR(1.5)-trimmed mean over the cases where that model
  produced a value (per-model exclusions) and that the official run would have collected
  (:func:`paper_excluded`: crashes, no Sim(Ref), partial collection); ``<metric>.average`` pools the
  per-case values of all models and trims the pool (eval-protocol section 6.3). No CI (the paper reports none).
* ``strict``: plain means with percentile bootstrap 95% CIs; ``<metric>.average`` is the plain mean of the
  per-case means over the face models; ``face_failure_rate.<model>`` = identities without a generated face
  / identities expected, pooled over cases.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from multiid_bench.metrics.cards import FACE_MODEL_METRICS, undefined_for_subset
from multiid_bench.metrics.stats import COPY_PASTE_FILTERS, bootstrap_ci, clean_values, iqr_summary, plain_mean
from multiid_bench.runner.run_folder import MISSING_FACES

__all__ = ["GENERAL_METRICS", "aggregate", "paper_excluded"]

GENERAL_METRICS: tuple[str, ...] = ("clip_i", "clip_t", "aesthetic")
_PAPER_STAT = "iqr_trimmed_mean"
_STRICT_STAT = "mean"


def _scored(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if r.get("status") in ("ok", MISSING_FACES, "failed") and r.get("scores")]


def _paper_entry(values: Sequence[float | None], k: float) -> dict[str, Any]:
    s = iqr_summary(values, k)
    v = clean_values(values)
    return {
        "value": None if s is None else s.mean, "n": int(v.size), "ci95": None, "statistic": _PAPER_STAT,
        "mean": plain_mean(v), "median": None if s is None else s.median,
        "outliers_removed": 0 if s is None else s.outliers_removed, "fallback": bool(s is not None and s.fallback),
    }


def _strict_entry(values: Sequence[float | None], resamples: int, seed: int) -> dict[str, Any]:
    v = clean_values(values)
    ci = bootstrap_ci(v, n_resamples=resamples, seed=seed)
    return {"value": plain_mean(v), "n": int(v.size), "ci95": list(ci) if ci else None, "statistic": _STRICT_STAT}


def _dropped(r: Mapping[str, Any]) -> frozenset[str]:
    """Metric keys the paper protocol leaves out for row ``r`` (set by :func:`aggregate`)."""
    return r.get("_paper_dropped", frozenset())  # type: ignore[return-value]


def _model_values(rows: Sequence[Mapping[str, Any]], protocol: str, model: str, metric: str) -> list[float | None]:
    out = []
    for r in rows:
        s = r["scores"].get(protocol, {}).get(model)
        if protocol == "paper" and f"{metric}.{model}" in _dropped(r):
            s = None
        out.append(None if s is None else s.get(metric))
    return out


def _general_values(rows: Sequence[Mapping[str, Any]], metric: str, protocol: str = "strict") -> list[float | None]:
    return [None if protocol == "paper" and metric in _dropped(r) else (r.get("general") or {}).get(metric)
            for r in rows]


def paper_excluded(rows: Iterable[Mapping[str, Any]], models: Sequence[str]) -> list[dict[str, Any]]:
    """Every ``{case_id, metrics, reason}`` the paper protocol leaves out, sorted by case id."""
    from multiid_bench.runner.protocols import paper_exclusions

    out: list[dict[str, Any]] = []
    for r in sorted(_scored(rows), key=lambda r: str(r["case_id"])):
        out += paper_exclusions(dict(r), models, GENERAL_METRICS)
    return out


_RANKED_FILTER = "p1: Sim(GT) > 0.40, p2/p3: Sim(GT) > 0.35"
#: Table 5's per-face-model Sim(GT) thresholds for the copy-paste ranking.
_MODEL_FILTERS = {"arcface": "paper-arcface", "adaface": "paper-adaface", "facenet": "paper-facenet"}


def _subset_filter(subset: str) -> str:
    """Tables 1 and 2: Sim(GT) > 0.40 on single-person cases, > 0.35 on multi-person ones."""
    return "paper-single" if subset == "p1" else "paper-multi"


def _ranked_copy_paste(rows: Sequence[Mapping[str, Any]], model: str, filter_of_row: Any,
                       protocol: str = "paper", keep_slots: bool = False) -> list[float | None]:
    """Copy-paste of the cases whose Sim(GT) (same model and protocol) passes the row's filter.

    ``keep_slots``: one entry per row (``None`` where filtered out), for per-case averaging.
    """
    out: list[float | None] = []
    for r in rows:
        f = COPY_PASTE_FILTERS[filter_of_row(r)]
        (sim,), (cp,) = _model_values([r], protocol, model, "sim_gt"), _model_values([r], protocol, model, "copy_paste")
        kept = f.apply([sim], [cp])
        out.extend(kept if kept or not keep_slots else [None])
    return out


def _ranked_entry(values: Sequence[float | None], k: float, filters: str) -> dict[str, Any]:
    entry = _paper_entry(values, k)
    entry["filter"] = filters
    return entry


def _paper_block(rows: Sequence[Mapping[str, Any]], models: Sequence[str], k: float,
                 general: Sequence[str] = GENERAL_METRICS) -> dict[str, Any]:
    block: dict[str, Any] = {}
    mixed = len({str(r["subset"]) for r in rows}) > 1
    for metric in FACE_MODEL_METRICS:
        pooled: list[float | None] = []
        # The official run reports each subset on its own; its p1 Blending is a forced 0.0 (eval-protocol 4.4),
        # kept as such for p1. A pooled view ("all") never averages those placeholders into p2/p3's values.
        used = [r for r in rows if not undefined_for_subset(metric, str(r["subset"]))] if mixed else rows
        for m in models:
            vals = _model_values(used, "paper", m, metric)
            block[f"{metric}.{m}"] = _paper_entry(vals, k)
            pooled.extend(vals)
        block[f"{metric}.average"] = _paper_entry(pooled, k)
    # The paper ranks copy-paste only over cases with a good enough Sim(GT) (Tables 1, 2 and 5); the
    # official code has no such filter (eval-protocol 6.5), so these are extra keys, not replacements.
    subset_filter = lambda r: _subset_filter(str(r["subset"]))  # noqa: E731
    ranked_pool: list[float | None] = []
    for m in models:
        vals = _ranked_copy_paste(rows, m, subset_filter)
        block[f"copy_paste_ranked.{m}"] = _ranked_entry(vals, k, "p1: Sim(GT) > 0.40, p2/p3: Sim(GT) > 0.35")
        ranked_pool.extend(vals)
        if m in _MODEL_FILTERS:
            name = _MODEL_FILTERS[m]
            fm_vals = _ranked_copy_paste(rows, m, lambda r, name=name: name)
            block[f"copy_paste_ranked_fm.{m}"] = _ranked_entry(
                fm_vals, k, f"Sim(GT) > {COPY_PASTE_FILTERS[name].threshold:.2f} ({COPY_PASTE_FILTERS[name].source})")
    block["copy_paste_ranked.average"] = _ranked_entry(ranked_pool, k, "p1: Sim(GT) > 0.40, p2/p3: Sim(GT) > 0.35")
    # Official case inclusion for the model-free metrics: the case was collected (paper_excluded).
    for metric in general:
        block[metric] = _paper_entry(_general_values(rows, metric, "paper"), k)
    return block


def _strict_block(rows: Sequence[Mapping[str, Any]], models: Sequence[str], resamples: int, seed: int,
                  general: Sequence[str] = GENERAL_METRICS) -> dict[str, Any]:
    block: dict[str, Any] = {}
    for metric in FACE_MODEL_METRICS:
        per_model = [_model_values(rows, "strict", m, metric) for m in models]
        for m, vals in zip(models, per_model):
            block[f"{metric}.{m}"] = _strict_entry(vals, resamples, seed)
        per_case = [plain_mean(case_vals) for case_vals in zip(*per_model)] if per_model else []
        block[f"{metric}.average"] = _strict_entry(per_case, resamples, seed)
    # the paper's Sim(GT) filter on strict per-case values too, so both protocols show both columns
    subset_filter = lambda r: _subset_filter(str(r["subset"]))  # noqa: E731
    ranked = [_ranked_copy_paste(rows, m, subset_filter, "strict", keep_slots=True) for m in models]
    for m, vals in zip(models, ranked):
        block[f"copy_paste_ranked.{m}"] = {**_strict_entry(vals, resamples, seed), "filter": _RANKED_FILTER}
    per_case = [plain_mean(v) for v in zip(*ranked)] if ranked else []
    block["copy_paste_ranked.average"] = {**_strict_entry(per_case, resamples, seed), "filter": _RANKED_FILTER}
    missing_all = expected_all = 0
    for m in models:
        missing = expected = 0
        for r in rows:
            s = r["scores"].get("strict", {}).get(m)
            if s is not None:
                missing += int(s.get("missing", 0))
                expected += int(s.get("expected", 0))
        missing_all += missing
        expected_all += expected
        block[f"face_failure_rate.{m}"] = {
            "value": (missing / expected) if expected else None, "n": expected, "ci95": None,
            "statistic": "pooled_rate", "missing": missing,
        }
    block["face_failure_rate.average"] = {
        "value": (missing_all / expected_all) if expected_all else None, "n": expected_all, "ci95": None,
        "statistic": "pooled_rate", "missing": missing_all,
    }
    for metric in general:
        block[metric] = _strict_entry(_general_values(rows, metric), resamples, seed)
    return block


def aggregate(
    rows: Iterable[Mapping[str, Any]], models: Sequence[str], *, iqr_k: float = 1.5,
    bootstrap_resamples: int = 2000, bootstrap_seed: int = 0, plugin_metrics: Sequence[str] = (),
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{"paper"|"strict": {"p1"|"p2"|"p3"|"all": {metric_key: entry}}}`` from per-case rows.

    ``plugin_metrics``: per-case metric plug-ins of the run (``multiid_bench.faces.plugins``), aggregated like CLIP-T.

    Rows are sorted by case id first, so the result does not depend on the order rows were written in.
    Subsets without cases are left out.
    """
    excluded: dict[str, set[str]] = {}
    for e in paper_excluded(rows, models):
        excluded.setdefault(e["case_id"], set()).update(e["metrics"])
    scored = [dict(r, _paper_dropped=frozenset(excluded.get(str(r["case_id"]), ())))
              for r in sorted(_scored(rows), key=lambda r: str(r["case_id"]))]
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in scored:
        groups.setdefault(str(r["subset"]), []).append(r)
    groups = {k: groups[k] for k in sorted(groups)}
    groups["all"] = scored
    out: dict[str, dict[str, dict[str, Any]]] = {"paper": {}, "strict": {}}
    for subset, group in groups.items():
        general = (*GENERAL_METRICS, *plugin_metrics)
        out["paper"][subset] = _paper_block(group, models, iqr_k, general)
        out["strict"][subset] = _strict_block(group, models, bootstrap_resamples, bootstrap_seed, general)
    return out


def case_count(values: Sequence[Any]) -> int:
    """Number of non-missing values (helper for summaries)."""
    return int(np.sum([v is not None for v in values]))
