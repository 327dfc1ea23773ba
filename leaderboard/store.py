"""Results store: schema-validated ``results.json`` files -> one tidy pandas table of measured numbers.

Measured rows carry ``provenance == "measured"``; paper rows (see :mod:`.paper`) carry ``"paper"``. The
two share column names so that views can put them side by side, but no function here ever mixes a paper
number into a measured row.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from multiid_bench.errors import BadInputError, MissingDataError
from multiid_bench.leaderboard.paper import canonical_model, model_kind
from multiid_bench.leaderboard.schema import results_schema_path, validate
from multiid_bench.metrics.cards import CARDS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MEASURED", "RunResult", "combined_frame", "load_cases", "load_results", "results_frame"]

log = logging.getLogger(__name__)
MEASURED = "measured"
RESULTS_NAME = "results.json"
CASES_NAME = "cases.jsonl"


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
    def cases_path(self) -> Path:
        return self.run_dir / CASES_NAME

    def label(self) -> str:
        return f"{self.model} ({self.run_dir.name})"


def resolve_results_path(path: str | Path) -> Path:
    """A run directory or a results file -> the results file; a clear error when there is none."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_NAME
    if not p.is_file():
        raise MissingDataError(
            f"no results file at {p}: pass a run directory that holds {RESULTS_NAME} "
            "(written by 'mbench evaluate' or 'mbench score') or the path of the file itself"
        )
    return p


def load_results(path: str | Path) -> RunResult:
    """Read and validate one ``results.json`` (or run directory).

    Raises:
        MissingDataError: no such file.
        BadInputError: not JSON, or not valid against the results schema (every violation is listed).
    """
    p = resolve_results_path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInputError(f"{p} is not a JSON file ({e}); results files are written by mbench evaluate/score") from e
    errors = validate(data)
    if errors:
        shown = "\n  ".join(errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise BadInputError(
            f"{p} does not match the results schema {results_schema_path()}:\n  {shown}{more}\n"
            "Re-create it with the current 'mbench score', or fix the fields named above."
        )
    for proto in data["metrics"].values():
        for subset, metrics in proto.items():
            for key, m in metrics.items():
                ci = m.get("ci95")
                if ci is not None and ci[0] > ci[1]:
                    raise BadInputError(f"{p}: metrics {subset}/{key} has ci95 {ci} with lower > upper")
    return RunResult(path=p, data=data)


def load_cases(run: RunResult | str | Path) -> list[dict[str, Any]]:
    """The per-case rows (``cases.jsonl`` next to ``results.json``); bad lines are reported by number."""
    path = run.cases_path if isinstance(run, RunResult) else Path(run)
    if path.is_dir():
        path = path / CASES_NAME
    if not path.is_file():
        raise MissingDataError(f"no per-case file at {path}: the runner writes {CASES_NAME} next to {RESULTS_NAME}")
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInputError(f"{path} line {i} is not JSON ({e}); was the run interrupted mid-write?") from e
            if not isinstance(row, dict) or ("case_id" not in row and "id" not in row):
                raise BadInputError(f"{path} line {i}: a case row must be an object with a 'case_id' field")
            rows.append(row)
    return rows


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
                    value = m.get("value")
                    records.append(
                        {
                            "provenance": MEASURED,
                            "source": f"measured {run.path}",
                            "table": None,
                            "benchmark": d["bench"]["id"],
                            "subset": subset,
                            "protocol": protocol,
                            "headline_protocol": run.protocol,
                            "display": run.model,
                            "model": canonical_model(run.model),
                            "row_kind": model_kind(run.model),
                            "metric": metric,
                            "face_model": face_model,
                            "metric_key": key,
                            "value": float("nan") if value is None else float(value),
                            "n": int(m["n"]),
                            "ci_lo": float(ci[0]) if ci else float("nan"),
                            "ci_hi": float(ci[1]) if ci else float("nan"),
                            "statistic": m.get("statistic", ""),
                            "reportable": run.reportable,
                            "bench_id": d["bench"]["id"],
                            "manifest_sha256": d["bench"]["manifest_sha256"],
                            "mbench_version": d.get("mbench_version", ""),
                            "profile": run.profile_name or "",
                            "created": d.get("created", ""),
                            "expected": counts["expected"],
                            "evaluated": counts["evaluated"],
                            "failed": counts["failed"],
                            "run_path": str(run.path),
                        }
                    )
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
