"""The run folder's bookkeeping: ``run.json`` (plan + config), ``sessions.jsonl`` (work per process),
and :func:`finalize`, which turns all rows of all shards into ``results.json`` + summaries.

``finalize`` reads files only, so it gives the same metrics whoever calls it: the last shard to finish,
a resumed process, or a user re-aggregating a copied run folder.
"""
from __future__ import annotations

import hashlib
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from multiid_bench.errors import ConfigError
from multiid_bench.runner.aggregate import GENERAL_METRICS, aggregate, paper_excluded
from multiid_bench.runner.config import RunConfig
from multiid_bench.runner.extract import WorkCounters
from multiid_bench.runner.provenance import environment, package_versions, redact_argv, utc_now
from multiid_bench.runner.run_folder import (
    MISSING_FACES, RESULTS_FILE, RUN_FILE, SCHEMA_VERSION, SESSIONS_FILE, append_row, plan_ids, read_json, read_jsonl,
    read_rows, read_run, repair_tail, validate_results, write_json,
)
from multiid_bench.runner.shard import Shard

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Bench
    from multiid_bench.runner.extract import FaceBackend

__all__ = ["MISSING_FACES_RULES", "RUN_FILE", "append_session", "failure_template", "finalize", "plan_complete", "write_run_manifest"]

#: How each protocol treats a case scored with missing faces (written into results.json["missing_faces"]).
MISSING_FACES_RULES = {
    "paper": "as the official script: a face model that finds no face in the generated image has no value for "
             "that case (excluded, never 0); with fewer faces Sim is the mean over the matched pairs and "
             "copy-paste needs equal face counts",
    "strict": "each identity without a generated face scores strict_missing_score in Sim(GT)/Sim(Ref), has no "
              "copy-paste value and counts in face_failure_rate",
}


def _plan_hash(full: "Bench", plan: "Bench") -> str:
    """The full bench's manifest hash, or (for a subset/limit) a hash of it plus the chosen case ids."""
    if len(plan.cases) == len(full.cases):
        return full.manifest_sha256
    ids = ",".join(sorted(c.id for c in plan.cases))
    return hashlib.sha256(f"{full.manifest_sha256}|{ids}".encode()).hexdigest()


def subset_hashes(source_sha256: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Per subset (and ``all``): a hash of the full bench's manifest plus the case ids scored in it.

    Why: a run over ``--subset p2`` has its own ``manifest_sha256`` (a selection), yet its p2 cases are
    exactly a full run's p2 cases. These hashes let the leaderboard compare the two on that subset (same
    source bench, same case ids) and nowhere else. Invalid bench records (no subset) are not counted.
    """
    by_subset: dict[str, list[str]] = {}
    for r in rows:
        if r.get("subset") is not None:
            by_subset.setdefault(str(r["subset"]), []).append(str(r["case_id"]))
            by_subset.setdefault("all", []).append(str(r["case_id"]))
    return {sub: hashlib.sha256(f"{source_sha256}|{sub}|{','.join(sorted(ids))}".encode()).hexdigest()
            for sub, ids in sorted(by_subset.items())}


def write_run_manifest(
    out: Path, config: RunConfig, selected: "Bench", plan: "Bench", invalid: Sequence[Any], invalid_ids: Sequence[str],
    profile: Mapping[str, Any], backends: Sequence["FaceBackend"], source: Any, bench_load: Any,
) -> dict[str, Any]:
    """Write ``run.json``; refuse to reuse a folder whose rows were made under another config or bench.

    ``selected`` is the chosen cases as loaded (its hash identifies the data), ``plan`` the same cases as
    evaluated (references possibly replaced by prepared crops, recorded under ``bench.references``).
    """
    path = out / RUN_FILE
    full = bench_load.bench
    from multiid_bench.data.refcrop import reference_info

    ref_info: dict[str, Any] = reference_info(plan)
    manifest = {
        "schema_version": SCHEMA_VERSION, "model": config.model, "config": config.to_dict(),
        "fingerprint": config.fingerprint(), "source": source.describe(),
        "bench": {"id": plan.id, "manifest_sha256": _plan_hash(full, selected), "source_sha256": full.manifest_sha256,
                  "n_cases": len(plan.cases) + len(invalid), "kind": getattr(bench_load, "kind", None),
                  "ref_mode": ref_info.get("mode"), "references": ref_info},
        "plan": {"case_ids": [c.id for c in plan.cases],
                 "invalid": [{"case_id": cid, "message": r.message} for cid, r in zip(invalid_ids, invalid)]},
        "profile": dict(profile), "face_models": [b.describe() for b in backends], "updated": utc_now(),
    }
    if config.scorers:  # per-case metric plug-ins run with the image scorers (multiid_bench.faces.plugins, multiid_bench.metrics.plugins)
        from multiid_bench.metrics.plugins import load_metric_plugins, metric_plugin_records

        manifest["metric_plugins"] = metric_plugin_records(load_metric_plugins())
    if path.exists():
        old = read_json(path, "run.json")
        problems = []
        if old.get("fingerprint") != manifest["fingerprint"]:
            changed = sorted(k for k, v in manifest["config"].items() if old.get("config", {}).get(k) != v)
            problems.append(f"settings differ ({', '.join(changed)})")
        if old.get("bench", {}).get("source_sha256") != full.manifest_sha256:
            problems.append("the bench content differs (manifest hash)")
        old_models = [m.get("model_key") for m in old.get("face_models", [])]
        if old_models != [b.model_key for b in backends]:
            problems.append("face models or their weights differ")
        if (old.get("metric_plugins") or {}) != (manifest.get("metric_plugins") or {}):
            problems.append("per-case metric plug-ins (or their versions) differ")
        if problems:
            raise ConfigError(
                f"{out} holds rows of another run: {'; '.join(problems)}. Resume with the same settings, pass "
                "another folder (--out / out=), or start afresh with --overwrite / overwrite=True (the old "
                "entries are moved aside, never deleted)."
            )
    write_json(path, manifest)
    return manifest


def append_session(out: Path, shard: Shard, started: str, wall_s: float, rows: int, work: WorkCounters,
                   general: Any) -> None:
    """One line per process: what it did (summed into ``results.json``'s ``work``)."""
    status = dict(getattr(general, "status", {}) or {})
    repair_tail(out / SESSIONS_FILE)  # a torn line of a killed process would swallow this one
    session = {"shard": str(shard), "started": started, "wall_s": round(wall_s, 3), "rows_written": rows,
               "work": work.to_dict(), "scorers": status, "command": redact_argv(sys.argv)}
    judge = getattr(general, "judge", None)
    if judge is not None:  # questions sent, requests (with re-asks), answers from the cache, cases failed
        session["judge"] = dict(judge.counters)
    append_row(out / SESSIONS_FILE, session)


def plan_complete(out: Path) -> bool:
    """True when every planned case (all shards) has a row."""
    run = read_run(out)
    have = {str(r["case_id"]) for r in read_rows(out)}
    return all(cid in have for cid in plan_ids(run))


def _scorer_status(sessions: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    status: dict[str, dict[str, Any]] = {}
    for s in sessions:  # the latest session that ran a scorer wins
        for name, st in (s.get("scorers") or {}).items():
            status[name] = dict(st)
    return status


def finalize(out: str | Path) -> dict[str, Any]:
    """Aggregate every row of the run folder into ``results.json``, ``summary.md`` and ``summary.csv``."""
    from multiid_bench._version import __version__
    from multiid_bench.metrics.cards import CARDS
    from multiid_bench.runner.summary import write_summaries

    out = Path(out)
    run = read_run(out)
    config = RunConfig.from_dict(run["config"])
    ids = plan_ids(run)
    wanted = set(ids)
    rows = [r for r in read_rows(out) if str(r["case_id"]) in wanted]
    models = [m["name"] for m in run["face_models"]]
    metric_plugins = dict(run.get("metric_plugins") or {})
    metrics = aggregate(rows, models, iqr_k=config.iqr_k, bootstrap_resamples=config.bootstrap_resamples,
                        bootstrap_seed=config.bootstrap_seed, plugin_metrics=tuple(metric_plugins))
    sessions = list(read_jsonl(out / SESSIONS_FILE))
    scorers = _scorer_status(sessions)
    _mark_missing_general(metrics, scorers)
    from multiid_bench.judge.stats import add_judge_metrics  # OmniContext PF/SC/Overall per task type

    add_judge_metrics(metrics, rows, scorers.get("vlm-judge"), bootstrap_resamples=config.bootstrap_resamples,
                      bootstrap_seed=config.bootstrap_seed)
    failed = [r for r in rows if r["status"] == "failed"]
    missing = [r for r in rows if r["status"] == MISSING_FACES]
    # ok + missing_faces + failed + not_applicable + pending == expected == rows planned (row ids are unique)
    counts = {
        "expected": len(ids), "ok": sum(1 for r in rows if r["status"] == "ok"), "missing_faces": len(missing),
        "failed": len(failed), "not_applicable": sum(1 for r in rows if r["status"] == "not_applicable"),
        "pending": len(wanted) - len(rows),
        "evaluated": sum(1 for r in rows if r.get("scores")),
        "irregular": sum(1 for r in rows if r.get("irregular")),
    }
    # what the official run would have lost of these cases (paper) -- strict keeps every case
    excluded = {"paper": paper_excluded(rows, models), "strict": []}
    counts["excluded"] = {k: len(v) for k, v in excluded.items()}
    weights: dict[str, str | None] = {}
    for m in run["face_models"]:
        weights[m["name"]] = m["card"].get("weights_sha256")
        det_sha = (m.get("detector_config") or {}).get("weights_sha256")
        if det_sha is not None:
            weights[f"detector:{m['detector']}"] = det_sha
    weights.update(run["profile"].get("weights") or {})  # every detector/model file, from the manifest
    for name, st in scorers.items():
        for wid, sha in (st.get("weights") or {}).items():
            weights[f"{name}:{wid}"] = sha
    results: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "model": run["model"],
        "bench": {**{k: run["bench"][k] for k in ("id", "manifest_sha256", "n_cases", "ref_mode")},
                  **({"source_sha256": run["bench"]["source_sha256"],
                      "subset_sha256": subset_hashes(run["bench"]["source_sha256"], rows)}
                     if run["bench"].get("source_sha256") else {})},
        "protocol": config.protocol, "profile": run["profile"], "config": run["config"],
        "config_fingerprint": run["fingerprint"], "reportable": config.reportable and counts["pending"] == 0,
        "partial": counts["failed"] > 0, "mbench_version": __version__, "packages": package_versions(),
        "weights": weights, "face_models": run["face_models"], "counts": counts,
        "failures": dict(Counter(failure_template(r) for r in failed).most_common()),
        "missing_faces": {**MISSING_FACES_RULES,
                          "reasons": dict(Counter(str(r.get("reason")) for r in missing).most_common())},
        "irregularities": dict(Counter(str(i.get("kind")) for r in rows for i in r.get("irregular") or ()).most_common()),
        "work": WorkCounters.total([s.get("work", {}) for s in sessions]).to_dict(),
        "scorers": {k: {"status": v.get("status", "missing"), "reason": v.get("reason")} for k, v in scorers.items()},
        "cards": {**{k: c.version for k, c in CARDS.items()}, **{k: p["version"] for k, p in metric_plugins.items()}},
        "shards": {"sessions": len(sessions), "shards_seen": sorted({str(s.get("shard")) for s in sessions})},
        "source": run["source"], "references": run["bench"].get("references"),
        "created": utc_now(), "wall_time_s": round(sum(float(s.get("wall_s", 0.0)) for s in sessions), 3),
        "environment": environment(), "metrics": metrics, "excluded": excluded,
    }
    judge_card = (scorers.get("vlm-judge") or {}).get("card")
    if judge_card and (scorers.get("vlm-judge") or {}).get("status") == "ok":
        from multiid_bench.judge.identity import judge_record

        results["judge"] = judge_record(judge_card, [s.get("judge") for s in sessions])
    validate_results(results)
    write_json(out / RESULTS_FILE, results)
    write_summaries(out, results)
    return results


def failure_template(row: Mapping[str, Any], limit: int = 160) -> str:
    """The group a failed row counts under in ``results.json["failures"]``: one key per kind of failure.

    A model's exception groups by its type and where it was raised (``ZeroDivisionError at nb.py:12 in f``);
    any other reason by its wording with the case-specific parts replaced: the case id -> ``<case>``, quoted
    text -> ``'…'``, file paths
    -> ``<path>``, numbers -> ``<n>``. Long keys are cut at a word boundary, never mid-word.

    Example:
        >>> failure_template({"reason": "generated image not found (looked for /r/images/p1_a.png, /r/p1_a.png)"})
        'generated image not found (looked for <path>, <path>)'
        >>> failure_template({"reason": "x", "generation": {"error": {"type": "KeyError", "where": "nb.py:3 in f"}}})
        'KeyError at nb.py:3 in f'
    """
    import re

    error = (row.get("generation") or {}).get("error")
    if isinstance(error, dict) and error.get("type"):
        return f"{error['type']} at {error.get('where', 'unknown location')}"
    text = str(row.get("reason"))
    if row.get("case_id"):
        text = text.replace(str(row["case_id"]), "<case>")
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"(?<![\w<])(?:[A-Za-z]:)?[\w.~-]*(?:/[\w.~@+-]+)+/?", "<path>", text)
    text = re.sub(r"(?<![\w<])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w>])", "<n>", text)
    if len(text) > limit:
        cut = text.rfind(" ", 0, limit)
        text = text[: cut if cut > 0 else limit].rstrip(" ,;:") + " …"
    return text


def _mark_missing_general(metrics: dict[str, Any], scorers: Mapping[str, Mapping[str, Any]]) -> None:
    """A CLIP/aesthetic metric whose scorer could not run says why, next to its ``null`` value."""
    owner = {"clip_i": "clip", "clip_t": "clip", "aesthetic": "aesthetic"}
    for block in metrics.values():
        for subset in block.values():
            for metric in GENERAL_METRICS:
                entry = subset.get(metric)
                st = scorers.get(owner[metric], {"status": "missing", "reason": "scorer did not run"})
                if entry is not None and entry["value"] is None and st.get("status") != "ok":
                    entry["missing_reason"] = st.get("reason") or st.get("status")
