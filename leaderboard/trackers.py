"""Experiment trackers: a finished run's numbers, per-case table, trade-off plot and a few images, logged to
TensorBoard, Weights & Biases or MLflow (``--log-to``, repeatable; each an optional extra); and a validation
loop's :meth:`~multiid_bench.identity_score.IdentityScore.compute` every N steps (:class:`ScoreLogger`).

Why from the run folder: the tracker receives exactly what ``results.json`` holds (every metric of every
protocol and subset, under ``<protocol>/<subset>/<metric key>``), so the numbers on a dashboard equal the
file's; a metric whose value is null (not computed) is not logged, and the count of those is returned.

Where each writes (the trackers' own conventions):

- ``tensorboard``: event files under ``RUN/tensorboard/`` (or ``log_dir``), read with ``tensorboard --logdir``;
- ``wandb``: ``wandb.init`` with the usual environment (``WANDB_PROJECT``, ``WANDB_MODE=offline``,
  ``WANDB_DIR``...); the project defaults to ``mbench``;
- ``mlflow``: the tracking URI of ``MLFLOW_TRACKING_URI`` (a local ``./mlruns`` file store by default).

A validation loop logs through :class:`ScoreLogger` (what ``IdentityScore(log_to=...)`` uses): the dict of
``compute()`` under the same ``<protocol>/<subset>/<metric key>`` names, at the training step it is given, so a
validation curve and a finished bench run share a tag. It joins the loop's own tracker run when one is
active (``wandb.run``, ``mlflow.active_run()``) and otherwise opens one, closed by :meth:`ScoreLogger.close`.

Trackio is not offered: its current release needs ``pillow<13`` (mbench runs with newer Pillow) and pulls a
Gradio stack; see docs/results.md.
"""
from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from multiid_bench.errors import ConfigError, MissingDependencyError
from multiid_bench.leaderboard.store import RunResult, load_cases, load_results

__all__ = ["TRACKERS", "LoggedRun", "ScoreLogger", "check_trackers", "log_run", "scalar_metrics"]

log = logging.getLogger(__name__)
#: tracker -> (import name, pip extra)
TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow"),
}
DEFAULT_PROJECT = "mbench"


@dataclass
class LoggedRun:
    """What one tracker received."""

    tracker: str
    where: str  # log dir, run URL / offline folder, or MLflow run id @ tracking URI
    scalars: int
    skipped_null: int
    images: int
    table_rows: int
    extra: dict[str, Any] = field(default_factory=dict)


def check_trackers(names: Sequence[str]) -> None:
    """Fail before any work when a tracker is unknown or its package is missing (exit 2 / exit 3)."""
    import importlib.util

    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"--log-to {name!r}: known trackers are {', '.join(TRACKERS)}")
        module, extra = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(f"--log-to {name} needs the {module} package: "
                                         f"pip install 'multiid-bench[{extra}]'")


def scalar_metrics(data: Mapping[str, Any]) -> tuple[dict[str, float], int]:
    """Every metric value of ``results.json`` as ``{"<protocol>/<subset>/<key>": value}``, and how many
    were null (not computed: never logged as a number)."""
    out: dict[str, float] = {}
    skipped = 0
    for protocol, subsets in data["metrics"].items():
        for subset, metrics in subsets.items():
            for key, entry in metrics.items():
                value = entry.get("value") if isinstance(entry, Mapping) else None
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    skipped += 1
                    continue
                out[f"{protocol}/{subset}/{key}"] = float(value)
    return out, skipped


def _case_table(run: RunResult) -> tuple[list[str], list[list[Any]]]:
    """The per-case table of the headline protocol (case id, subset, status, reason, per-case metrics)."""
    from multiid_bench.leaderboard.cases import case_view

    rows = load_cases(run) if run.has_cases else []
    views = [case_view(r, run.run_dir, run.protocol) for r in rows]
    keys = sorted({k for v in views for k in v.metrics})
    header = ["case_id", "subset", "status", "reason", *keys]
    return header, [[v.id, v.subset, v.status, v.reason, *[v.metrics.get(k) for k in keys]] for v in views]


def _images(run: RunResult, limit: int) -> list[tuple[str, Path]]:
    """(case id, generated image) of the first ``limit`` cases whose image is on disk."""
    from multiid_bench.leaderboard.cases import case_view

    out = []
    for row in (load_cases(run) if run.has_cases else []):
        v = case_view(row, run.run_dir, run.protocol)
        if v.generated is not None and v.generated.is_file():
            out.append((v.id, v.generated))
        if len(out) >= limit:
            break
    return out


def _plot(run: RunResult, folder: Path) -> Path | None:
    """The run's trade-off plot (headline protocol, its first subset) as a PNG, or None when it has no points."""
    from multiid_bench.leaderboard.plots import plot_tradeoff, tradeoff_points
    from multiid_bench.leaderboard.store import combined_frame

    headline = run.data["metrics"].get(run.protocol) or {}
    subset = next((s for s in ("p1", "p2", "p3", "all") if s in headline), None)
    if subset is None:
        return None
    try:
        pts = tradeoff_points(combined_frame([run], include_paper=False), subset=subset, protocol=run.protocol,
                              include_limits=True)
        (png,) = plot_tradeoff(pts, folder / "tradeoff", formats=("png",), title=f"{run.model} · {subset}")
    except ConfigError as e:  # nothing to plot (e.g. no Sim(GT) / copy-paste): said, not fatal
        log.warning("no trade-off plot for %s: %s", run.path, e)
        return None
    return png


def _rgb(path: Path) -> Any:
    import numpy as np

    from multiid_bench.images import load_image

    return np.asarray(load_image(path).convert("RGB"))


def _tensorboard(run: RunResult, scalars: dict[str, float], table: tuple[list[str], list[list[Any]]],
                 plot: Path | None, images: list[tuple[str, Path]], *, log_dir: Path | None, **_: Any) -> tuple[str, int]:
    from torch.utils.tensorboard import SummaryWriter

    folder = log_dir or run.run_dir / "tensorboard"
    writer = SummaryWriter(log_dir=str(folder))
    try:
        for tag, value in scalars.items():
            writer.add_scalar(tag, value, global_step=0)
        header, rows = table
        md = "| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n" + "\n".join(
            "| " + " | ".join("" if c is None else (f"{c:.4f}" if isinstance(c, float) else str(c)) for c in r) + " |"
            for r in rows)
        writer.add_text("cases", md, global_step=0)
        n = 0
        if plot is not None:
            writer.add_image("tradeoff", _rgb(plot), global_step=0, dataformats="HWC")
            n += 1
        for cid, path in images:
            writer.add_image(f"gallery/{cid}", _rgb(path), global_step=0, dataformats="HWC")
            n += 1
    finally:
        writer.close()
    return str(folder), n


def _wandb(run: RunResult, scalars: dict[str, float], table: tuple[list[str], list[list[Any]]],
           plot: Path | None, images: list[tuple[str, Path]], *, project: str | None, run_name: str | None,
           **_: Any) -> tuple[str, int]:
    import wandb

    w = wandb.init(project=project or DEFAULT_PROJECT, name=run_name or run.model, job_type="evaluation",
                   config={"model": run.model, "bench": run.bench, "protocol": run.protocol,
                           "profile": run.profile_name, "results": str(run.path)})
    try:
        header, rows = table
        payload: dict[str, Any] = dict(scalars)
        payload["cases"] = wandb.Table(columns=header, data=rows)
        if plot is not None:
            payload["tradeoff"] = wandb.Image(str(plot))
        payload["gallery"] = [wandb.Image(str(p), caption=cid) for cid, p in images]
        w.log(payload)
        where = w.url or str(Path(w.dir).parent)
    finally:
        w.finish()
    return where, len(images) + (plot is not None)


def _mlflow(run: RunResult, scalars: dict[str, float], table: tuple[list[str], list[list[Any]]],
            plot: Path | None, images: list[tuple[str, Path]], *, project: str | None, run_name: str | None,
            **_: Any) -> tuple[str, int]:
    import mlflow

    mlflow.set_experiment(project or DEFAULT_PROJECT)
    with mlflow.start_run(run_name=run_name or run.model) as active:
        mlflow.set_tags({"mbench.model": run.model, "mbench.bench": str(run.bench.get("id")),
                         "mbench.protocol": run.protocol, "mbench.profile": str(run.profile_name)})
        mlflow.log_metrics(scalars)
        header, rows = table
        with tempfile.TemporaryDirectory() as tmp:
            import csv

            cases = Path(tmp) / "cases.csv"
            with cases.open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows([header, *rows])
            mlflow.log_artifact(str(cases))
        mlflow.log_artifact(str(run.path))  # results.json itself, next to its numbers
        if plot is not None:
            mlflow.log_artifact(str(plot), artifact_path="plots")
        for cid, path in images:
            mlflow.log_artifact(str(path), artifact_path=f"gallery/{cid}")
        run_id = active.info.run_id
    return f"{run_id} @ {mlflow.get_tracking_uri()}", len(images) + (plot is not None)


_BACKENDS: dict[str, Callable[..., tuple[str, int]]] = {"tensorboard": _tensorboard, "wandb": _wandb, "mlflow": _mlflow}


def log_run(run: str | Path | RunResult, to: Sequence[str], *, log_dir: str | Path | None = None,
            project: str | None = None, run_name: str | None = None, max_images: int = 8) -> list[LoggedRun]:
    """Log a finished run to each tracker of ``to`` (see the module docstring for where each writes).

    Args:
        run: a run folder (with ``results.json``) or its results.
        to: tracker names (:data:`TRACKERS`).
        log_dir: TensorBoard only: the event folder (default ``RUN/tensorboard``).
        project, run_name: W&B project / MLflow experiment (default ``mbench``) and run name (the model).
        max_images: generated images logged as a gallery (the first cases with an image on disk).
    """
    check_trackers(to)
    res = run if isinstance(run, RunResult) else load_results(run)
    scalars, skipped = scalar_metrics(res.data)
    table = _case_table(res)
    images = _images(res, max_images)
    out = []
    with tempfile.TemporaryDirectory(prefix="mbench-track-") as tmp:
        plot = _plot(res, Path(tmp))
        for name in dict.fromkeys(to):
            where, n_images = _BACKENDS[name](res, scalars, table, plot, images, log_dir=Path(log_dir) if log_dir else None,
                                              project=project, run_name=run_name)
            out.append(LoggedRun(name, where, len(scalars), skipped, n_images, len(table[1])))
            log.info("logged %s to %s: %d scalars (%d null, not logged), %d images, %d case rows", res.path, name,
                     len(scalars), skipped, n_images, len(table[1]))
    return out


class ScoreLogger:
    """Log a validation loop's identity numbers to trackers, one call per validation step.

    One open writer / run per tracker for the whole loop (TensorBoard event file, W&B run, MLflow run),
    opened on the first :meth:`log`. W&B and MLflow join the run the training loop already has open
    (``wandb.run``, ``mlflow.active_run()``) and then leave it open at :meth:`close`; a run this logger
    opened it also closes.

    Args:
        to: tracker names (:data:`TRACKERS`); checked here, before any validation runs.
        log_dir: TensorBoard only: the event folder (default: ``SummaryWriter``'s own, ``runs/DATE_HOST``).
        project: W&B project / MLflow experiment of a run opened here (default ``mbench``).
        run_name: the name of a run opened here (default ``identity-score``).
    """

    def __init__(self, to: Sequence[str], *, log_dir: str | Path | None = None, project: str | None = None,
                 run_name: str | None = None) -> None:
        check_trackers(to)
        self.to = tuple(dict.fromkeys(to))
        self.log_dir = Path(log_dir) if log_dir is not None else None
        self.project = project or DEFAULT_PROJECT
        self.run_name = run_name or "identity-score"
        self._writer: Any = None  # TensorBoard SummaryWriter
        self._owned: dict[str, Any] = {}  # tracker -> the run this logger opened (closed by close())
        self._active: set[str] = set()  # trackers opened (or joined) since the last close()
        self.where: dict[str, str] = {}
        """tracker -> where it logged (event folder, W&B run folder or URL, ``MLflow run id @ tracking URI``)."""

    def _opened(self, tracker: str, where: str, joined: bool) -> None:
        self._active.add(tracker)
        self.where[tracker] = where
        log.info("identity scores log to %s: %s (%s)", tracker, where,
                 "the active run of the training loop" if joined else "a run opened by mbench")

    def log(self, scores: Mapping[str, float | None], step: int, *, protocol: str, subset: str) -> tuple[int, int]:
        """Log ``scores`` (``{metric key: value}``) as ``<protocol>/<subset>/<key>`` at ``step`` to every tracker.

        Returns (scalars logged per tracker, null values not logged).
        """
        scalars = {f"{protocol}/{subset}/{k}": float(v) for k, v in scores.items()
                   if v is not None and not (isinstance(v, float) and math.isnan(v))}
        skipped = len(scores) - len(scalars)
        for name in self.to:
            getattr(self, f"_log_{name}")(scalars, step)
        log.info("logged %d identity scalars at step %d to %s (%d null, not logged)", len(scalars), step,
                 ", ".join(self.to), skipped)
        return len(scalars), skipped

    def _log_tensorboard(self, scalars: dict[str, float], step: int) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.log_dir) if self.log_dir is not None else None)
            self._opened("tensorboard", str(self._writer.log_dir), joined=False)
        for tag, value in scalars.items():
            self._writer.add_scalar(tag, value, global_step=step)
        self._writer.flush()  # readable now, not only after close()

    def _log_wandb(self, scalars: dict[str, float], step: int) -> None:
        import wandb

        if "wandb" not in self._active:
            joined = wandb.run is not None
            run = wandb.run if joined else wandb.init(project=self.project, name=self.run_name, job_type="validation")
            if not joined:
                self._owned["wandb"] = run
            self._opened("wandb", run.url or str(Path(run.dir).parent), joined)
        wandb.log(scalars, step=step)

    def _log_mlflow(self, scalars: dict[str, float], step: int) -> None:
        import mlflow

        if "mlflow" not in self._active:
            active = mlflow.active_run()
            if active is None:
                mlflow.set_experiment(self.project)
                active = self._owned["mlflow"] = mlflow.start_run(run_name=self.run_name)
            self._opened("mlflow", f"{active.info.run_id} @ {mlflow.get_tracking_uri()}", "mlflow" not in self._owned)
        mlflow.log_metrics(scalars, step=step)

    def close(self) -> None:
        """Flush TensorBoard and finish the W&B / MLflow runs this logger opened (never the loop's own)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if "wandb" in self._owned:
            self._owned.pop("wandb").finish()
        if "mlflow" in self._owned:
            import mlflow

            self._owned.pop("mlflow")
            mlflow.end_run()
        self._active.clear()  # a later log() opens the trackers again
