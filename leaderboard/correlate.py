"""``mbench correlate HUMAN.csv RUN_DIR...``: agreement between a metric and human judgements (paper Table 7).

HUMAN.csv has one row per judged (case, model): columns ``case_id``, a value column (``score`` or
``rank``, or any name given with ``human_column``), optionally ``model`` (needed when several runs are
given) and ``dimension`` (e.g. ``copy_paste``, ``id_sim``; filter with ``dimension``). The machine side is
the per-case value of ``metric`` in each run's rows (all shard files, via ``run_folder``); ``<metric>.average`` is the per-case mean
over the face models that produced a value. With ``within_case_ranks`` both sides are turned into ranks
among the models of each case first (average ranks for ties), which is the paper's "machine ranking vs
human ranking". Pairs missing either side are dropped and counted, never imputed.

``orient=True`` is for human values where more is always better (a ``mbench study``'s stars: 5 stars =
least copy-paste): the machine values of a metric whose card says lower is better (copy-paste) are negated
first, so both sides read "higher = better" and agreement shows as a positive correlation, as in Table 7.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from multiid_bench.errors import BadInputError, ConfigError, MissingDataError
from multiid_bench.leaderboard.cases import case_values
from multiid_bench.leaderboard.paper import canonical_model, load_paper_correlations
from multiid_bench.leaderboard.store import RunResult, load_cases

__all__ = ["Correlation", "correlate", "read_human_csv"]

_PAPER_DIMENSION = {"copy_paste": "Copy-Paste", "sim_gt": "ID Sim", "sim_ref": "ID Sim"}


@dataclass
class Correlation:
    metric: str
    n: int
    dropped: int
    stats: dict[str, tuple[float, float]]  # name -> (statistic, p-value)
    ranks: bool
    oriented: bool = False
    paper: dict[str, tuple[float, float]] = field(default_factory=dict)
    paper_dimension: str | None = None


def read_human_csv(path: str | Path, *, human_column: str | None = None,
                   dimension: str | None = None) -> list[dict[str, Any]]:
    """Rows ``{case_id, model, value}`` from the human-judgement CSV, with file/line in every error."""
    p = Path(path)
    if not p.is_file():
        raise MissingDataError(f"human ratings file {p} not found")
    with open(p, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        col = human_column or next((c for c in ("score", "rank", "human", "rating") if c in cols), None)
        if "case_id" not in cols or col is None or col not in cols:
            raise BadInputError(f"{p}: need a 'case_id' column and a value column ('score' or 'rank', or pass "
                                f"--human-column); found columns {cols}")
        if dimension is not None and "dimension" not in cols:
            raise BadInputError(f"{p}: --dimension {dimension!r} given but the file has no 'dimension' column")
        out = []
        for i, row in enumerate(reader, 2):
            if dimension is not None and row["dimension"] != dimension:
                continue
            text = (row.get(col) or "").strip()
            if not text:
                continue
            try:
                value = float(text)
            except ValueError as e:
                raise BadInputError(f"{p} line {i}: {col}={text!r} is not a number") from e
            out.append({"case_id": row["case_id"].strip(), "model": canonical_model((row.get("model") or "").strip()),
                        "value": value})
    if not out:
        raise BadInputError(f"{p}: no usable rows" + (f" for dimension {dimension!r}" if dimension else ""))
    return out


def _machine(run: RunResult, metric: str, orient: bool = False) -> dict[str, float]:
    values = case_values(load_cases(run), run.run_dir, run.protocol, "all", metric)
    if orient:
        from multiid_bench.metrics.cards import CARDS

        card = CARDS.get(metric.split(".")[0])
        if card is None:
            raise ConfigError(f"metric {metric!r} has no metric card: its direction (higher or lower is better) "
                              "is unknown, so it cannot be oriented against ratings")
        if not card.higher_is_better:
            values = {k: -v for k, v in values.items()}
    return values


def _rank_within(pairs: list[tuple[str, float, float]]) -> list[tuple[float, float]]:
    from scipy.stats import rankdata

    by_case: dict[str, list[tuple[float, float]]] = {}
    for case, h, m in pairs:
        by_case.setdefault(case, []).append((h, m))
    out = []
    for items in by_case.values():
        if len(items) < 2:
            continue  # a rank among one model carries no information
        hr, mr = rankdata([h for h, _ in items]), rankdata([m for _, m in items])
        out.extend(zip(map(float, hr), map(float, mr)))
    return out


def correlate(human: Sequence[dict[str, Any]], runs: Sequence[RunResult], metric: str, *,
              within_case_ranks: bool = False, orient: bool = False) -> Correlation:
    """Pearson r, Spearman rho and Kendall tau (scipy, two-sided p-values) between humans and ``metric``.

    ``orient``: negate a lower-is-better metric first (human values where more is better; module docstring).
    """
    from scipy import stats

    if not runs:
        raise ConfigError("give at least one run directory")
    machine = {canonical_model(r.model): _machine(r, metric, orient) for r in runs}
    single = len(machine) == 1
    pairs, dropped = [], 0
    for h in human:
        model = h["model"] or (next(iter(machine)) if single else "")
        if model not in machine:
            if not single or h["model"]:
                dropped += 1
                continue
        value = machine.get(model, {}).get(h["case_id"])
        if value is None:
            dropped += 1
            continue
        pairs.append((h["case_id"], h["value"], value))
    xy = _rank_within(pairs) if within_case_ranks else [(h, m) for _, h, m in pairs]
    if len(xy) < 3:
        raise BadInputError(f"only {len(xy)} (human, {metric}) pairs matched ({dropped} dropped): need at least 3. "
                            "Check that case_id (and model) in the CSV match the runs' cases.jsonl.")
    hx, my = [a for a, _ in xy], [b for _, b in xy]
    res = {"pearson": stats.pearsonr(hx, my), "spearman": stats.spearmanr(hx, my), "kendall": stats.kendalltau(hx, my)}
    out = Correlation(metric=metric, n=len(xy), dropped=dropped, ranks=within_case_ranks, oriented=orient,
                      stats={k: (float(v.statistic), float(v.pvalue)) for k, v in res.items()})
    dim = _PAPER_DIMENSION.get(metric.split(".")[0])
    if dim:
        paper = load_paper_correlations()
        sub = paper[paper["dimension"] == dim]
        out.paper = {r["statistic"]: (float(r["value"]), float(r["p_value"])) for _, r in sub.iterrows()}
        out.paper_dimension = dim
    return out
