"""Results store: schema-validated ``results.json`` files -> one tidy pandas table of measured numbers.

Measured rows carry ``provenance == "measured"``; paper rows (see :mod:`.paper`) carry ``"paper"``. The
two share column names so that views can put them side by side, but no function here ever mixes a paper
number into a measured row.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from multiid_bench.errors import BadInputError, MissingDataError
from multiid_bench.leaderboard.paper import canonical_model, model_kind
from multiid_bench.metrics.cards import CARDS, undefined_for_subset
from multiid_bench.runner import run_folder

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MEASURED", "RunResult", "combined_frame", "load_cases", "load_results", "results_frame", "validate"]

log = logging.getLogger(__name__)
MEASURED = "measured"
RESULTS_NAME = run_folder.RESULTS_FILE
CASES_NAME = "cases.jsonl"  # or cases.shard-I-of-N.jsonl per shard: read through run_folder.read_rows


@dataclass(frozen=True)
class RunResult:
    """One validated ``results.json`` and where it came from."""

    path: Path
    data: dict[str, Any]

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    @property
    def model(self) -> str:
        return str(self.data["model"])

    @property
    def protocol(self) -> str:
        return str(self.data["protocol"])

    @property
    def bench(self) -> dict[str, Any]:
        return dict(self.data["bench"])

    @property
    def reportable(self) -> bool:
        return bool(self.data["reportable"])

    @property
    def counts(self) -> dict[str, int]:
        return dict(self.data["counts"])

    @property
    def profile_name(self) -> str | None:
        prof = self.data.get("profile")
        if isinstance(prof, str):
            return prof
        if isinstance(prof, dict):
            return prof.get("name")
        return None

    @property
    def metric_versions(self) -> dict[str, str] | None:
        """Metric card versions the run was scored with (the runner's ``cards``; ``metric_versions`` also read)."""
        mv = self.data.get("cards", self.data.get("metric_versions"))
        return dict(mv) if isinstance(mv, dict) else None

    @property
    def has_cases(self) -> bool:
        """True when per-case rows (unsharded or any shard) sit next to ``results.json``."""
        return run_folder.has_rows(self.run_dir)

    def label(self) -> str:
        return f"{self.model} ({self.run_dir.name})"


validate = run_folder.schema_errors  # every violation of the one results schema, as "<json path>: <message>"


def load_results(path: str | Path) -> RunResult:
    """Read and validate one ``results.json`` (or run directory) against the runner's schema.

    Raises:
        MissingDataError: no such file.
        BadInputError: not JSON, or not valid against the results schema (every violation is listed).
    """
    p, data = run_folder.read_results(path)
    for proto in data["metrics"].values():
        for subset, metrics in proto.items():
            for key, m in metrics.items():
                ci = m.get("ci95")
                if ci is not None and ci[0] > ci[1]:
                    raise BadInputError(f"{p}: metrics {subset}/{key} has ci95 {ci} with lower > upper")
    return RunResult(path=p, data=data)


def load_cases(run: RunResult | str | Path) -> list[dict[str, Any]]:
    """The per-case rows of a run folder, all shard files merged (:func:`run_folder.read_rows`)."""
    folder = run.run_dir if isinstance(run, RunResult) else Path(run)
    if folder.is_file():  # a rows file given directly
        return run_folder.read_rows([folder])
    if not run_folder.has_rows(folder):
        raise MissingDataError(f"no per-case rows in {folder}: the runner writes {CASES_NAME} (or one "
                               f"cases.shard-I-of-N.jsonl per shard) next to {RESULTS_NAME}")
    return run_folder.read_rows(folder)


def _split_key(key: str) -> tuple[str, str | None]:
    metric, _, face_model = key.partition(".")
    return metric, (face_model or None)


def results_frame(runs: Sequence[RunResult]) -> "pd.DataFrame":
    """Tidy table of measured numbers: one row per (run, protocol, subset, metric key).

    Metric keys whose base id has no card are skipped with a warning (a table cannot show a metric whose
    direction it does not know).
    """
    import pandas as pd

    records = []
    for run in runs:
        d = run.data
        counts = run.counts
        for protocol, subsets in d["metrics"].items():
            for subset, metrics in subsets.items():
                for key, m in metrics.items():
                    metric, face_model = _split_key(key)
                    if metric not in CARDS:
                        log.warning("%s: metric %r has no metric card; skipped", run.path, key)
                        continue
                    ci = m.get("ci95")
                    undefined = undefined_for_subset(metric, subset)
                    value = None if undefined else m.get("value")
                    records.append({
                        "provenance": MEASURED, "source": f"measured {run.path}", "table": None,
                        "benchmark": d["bench"]["id"], "subset": subset, "protocol": protocol,
                        "headline_protocol": run.protocol, "display": run.model, "model": canonical_model(run.model),
                        "row_kind": model_kind(run.model), "metric": metric, "face_model": face_model,
                        "metric_key": key, "value": float("nan") if value is None else float(value), "n": 0 if undefined else int(m["n"]),
                        "ci_lo": float(ci[0]) if ci else float("nan"), "ci_hi": float(ci[1]) if ci else float("nan"),
                        "statistic": m.get("statistic", ""), "reportable": run.reportable, "bench_id": d["bench"]["id"],
                        "manifest_sha256": d["bench"]["manifest_sha256"], "mbench_version": d.get("mbench_version", ""),
                        "profile": run.profile_name or "", "created": d.get("created", ""),
                        "expected": counts["expected"], "evaluated": counts["evaluated"], "failed": counts["failed"],
                        "missing_faces": counts.get("missing_faces", 0),
                        "run_path": str(run.path),
                    })
    return pd.DataFrame.from_records(records)


def combined_frame(
    runs: Sequence[RunResult], *, include_paper: bool, paper_tables: Iterable[str] | None = None
) -> "pd.DataFrame":
    """Measured rows, plus (when asked) paper rows, in one frame; ``provenance`` tells them apart."""
    import pandas as pd

    from multiid_bench.leaderboard.paper import load_paper_results

    frames = [results_frame(runs)] if runs else []
    if include_paper:
        paper = load_paper_results(paper_tables)
        frames.append(paper[paper["benchmark"] == "MultiID-Bench"])
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True, sort=False)
