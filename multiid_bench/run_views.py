"""Read a run's ``results.json`` without digging: a flat metrics table, the headline numbers, a one-line label.

These are the views behind :meth:`multiid_bench.api.Run.metrics`, :meth:`~multiid_bench.api.Run.headline`,
``repr(Run)`` and ``mbench evaluate/score --json``. They read only what the runner wrote: no number is
recomputed, so a view and ``results.json`` never disagree.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from multiid_bench.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["HEADLINE_FACE_MODEL", "HEADLINE_METRICS", "headline", "metrics_frame", "run_label"]

#: The columns of the paper's main tables (2a/2b): identity, copy-paste as the paper ranks it (Sim(GT)-filtered),
#: prompt and reference similarity, aesthetics.
HEADLINE_METRICS = ("sim_gt", "sim_ref", "copy_paste_ranked", "clip_i", "clip_t", "aesthetic")
#: Identity metrics in the headline are the mean over the profile's face models, as in the paper's tables.
HEADLINE_FACE_MODEL = "average"

FRAME_COLUMNS = ("metric", "face_model", "value", "ci_lo", "ci_hi", "n", "statistic")


def _protocol_metrics(summary: Mapping[str, Any], protocol: str | None, subset: str) -> tuple[str, dict[str, Any]]:
    protocol = protocol or summary["protocol"]
    by_protocol = summary["metrics"]
    if protocol not in by_protocol:
        raise ConfigError(f"this run has no {protocol!r} protocol; it has {sorted(by_protocol)}")
    if subset not in by_protocol[protocol]:
        raise ConfigError(f"this run has no subset {subset!r} under the {protocol} protocol; it has "
                          f"{sorted(by_protocol[protocol])}")
    return protocol, by_protocol[protocol][subset]


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def metrics_frame(summary: Mapping[str, Any], protocol: str | None = None, subset: str = "all") -> "pd.DataFrame":
    """Every aggregated metric of one protocol and subset as a flat table.

    Args:
        summary: a parsed ``results.json``.
        protocol: ``"paper"`` or ``"strict"``; ``None`` = the run's headline protocol.
        subset: ``"p1"``, ``"p2"``, ``"p3"`` or ``"all"`` (what the run has).

    Returns:
        A DataFrame with columns metric, face_model (``None`` for image-level metrics such as ``clip_t``), value
        (NaN when not computed, e.g. a scorer whose weights are missing), ci_lo, ci_hi (NaN without a
        bootstrap CI), n and statistic, in ``results.json`` order.

    Raises:
        ConfigError: the run has no such protocol or subset (the message lists those it has).

    Example:
        >>> s = {"protocol": "paper", "metrics": {"paper": {"all": {"sim_gt.dlib": {"value": 0.5, "n": 3}}}}}
        >>> metrics_frame(s)[["metric", "face_model", "value", "n"]].values.tolist()
        [['sim_gt', 'dlib', 0.5, 3]]
    """
    import pandas as pd

    _, metrics = _protocol_metrics(summary, protocol, subset)
    records = []
    for key, m in metrics.items():
        metric, _, face_model = key.partition(".")
        ci = m.get("ci95") or (None, None)
        records.append({"metric": metric, "face_model": face_model or None, "value": _number(m.get("value")),
                        "ci_lo": _number(ci[0]), "ci_hi": _number(ci[1]), "n": int(m.get("n", 0)),
                        "statistic": m.get("statistic", "")})
    return pd.DataFrame.from_records(records, columns=list(FRAME_COLUMNS))


def headline(summary: Mapping[str, Any], folder: str | Path | None = None, protocol: str | None = None,
             subset: str = "all") -> dict[str, Any]:
    """The few numbers a paper table shows for this run, plus what they were measured on (JSON-ready).

    Args:
        summary: a parsed ``results.json``.
        folder: the run folder, recorded as ``folder``.
        protocol: ``None`` = the run's headline protocol.
        subset: ``"all"`` by default.

    Returns:
        ``{"model", "bench", "profile", "protocol", "subset", "reportable", "counts", "folder", "metrics"}``
        where ``metrics`` maps each of :data:`HEADLINE_METRICS` to ``{"value", "ci95", "n"}`` (identity
        metrics over :data:`HEADLINE_FACE_MODEL`); a metric the run did not compute has value ``None``.

    Raises:
        ConfigError: the run has no such protocol or subset.

    Example:
        >>> s = {"model": "m", "bench": {"id": "demo"}, "profile": {"name": "offline"}, "protocol": "paper",
        ...      "reportable": True, "counts": {"ok": 1}, "metrics": {"paper": {"all": {}}}}
        >>> headline(s)["metrics"]["sim_gt"]
        {'value': None, 'ci95': None, 'n': 0}
    """
    protocol, metrics = _protocol_metrics(summary, protocol, subset)
    numbers = {}
    for metric in HEADLINE_METRICS:
        m = metrics.get(f"{metric}.{HEADLINE_FACE_MODEL}") or metrics.get(metric) or {}
        numbers[metric] = {"value": m.get("value"), "ci95": m.get("ci95"), "n": int(m.get("n", 0))}
    return {"model": summary["model"], "bench": summary["bench"]["id"],
            "profile": (summary.get("profile") or {}).get("name"), "protocol": protocol, "subset": subset,
            "reportable": summary["reportable"], "counts": dict(summary["counts"]),
            "folder": None if folder is None else str(folder), "metrics": numbers}


def run_label(folder: Path, summary: Mapping[str, Any] | None, rows_written: int = 0) -> str:
    """``repr(Run)``: one line with model, bench, profile, counts and folder (never the whole JSON).

    Example:
        >>> run_label(Path("runs/x"), None, 3)
        "Run(incomplete: 3 case(s) written, results.json comes when every shard has finished, folder='runs/x')"
    """
    if summary is None:
        return (f"Run(incomplete: {rows_written} case(s) written, results.json comes when every shard has finished, "
                f"folder={str(folder)!r})")
    c = summary["counts"]
    return (f"Run(model={summary['model']!r}, bench={summary['bench']['id']!r}, "
            f"profile={(summary.get('profile') or {}).get('name')!r}, protocol={summary['protocol']!r}, "
            f"cases={c['expected']}: {c['ok']} ok, {c['failed']} failed, {c.get('not_applicable', 0)} not applicable, "
            f"folder={str(folder)!r})")
