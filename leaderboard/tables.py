"""Leaderboard tables: pick one view (subset, protocol, face model) of the tidy frame, rank, format.

Arrows, names and ranking direction come from the metric cards. Rows from the paper and measured rows
sit in one table but keep their provenance column; the oracle rows (GT / copy-reference, the paper's
"experimental limits") are shown but never ranked, as in the paper.
"""
from __future__ import annotations

import math
from pathlib import Path
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from multiid_bench.errors import ConfigError
from multiid_bench.leaderboard.paper import PAPER, metric_key, paper_meta, paper_table_for
from multiid_bench.metrics.cards import CARDS, FACE_MODEL_METRICS, MetricCard, get_card

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Cell", "Column", "LeaderboardTable", "Row", "build_leaderboard", "view_keys"]

SUBSETS = ("p1", "p2", "p3", "all")
PROTOCOLS = ("paper", "strict")
FACE_MODELS = ("average", "arcface", "adaface", "facenet", "dlib", "facenet_mtcnn")


@dataclass(frozen=True)
class Column:
    key: str
    card: MetricCard
    face_model: str | None

    @property
    def header(self) -> str:
        fm = f" [{self.face_model}]" if self.face_model and self.face_model != "average" else ""
        return f"{self.card.name}{fm} {self.card.arrow}"


@dataclass
class Cell:
    value: float
    ci_lo: float = math.nan
    ci_hi: float = math.nan
    n: int | None = None
    rank: int | None = None
    statistic: str = ""

    @property
    def has_ci(self) -> bool:
        return not (math.isnan(self.ci_lo) or math.isnan(self.ci_hi))

    def text(self, digits: int = 3) -> str:
        if math.isnan(self.value):
            return "N/A"
        out = f"{self.value:.{digits}f}"
        if self.has_ci:
            out += f" ± {(self.ci_hi - self.ci_lo) / 2:.{digits}f}"
        return out


@dataclass
class Row:
    label: str
    model: str
    provenance: str  # "paper" or "measured"
    provenance_text: str
    kind: str
    n_text: str
    reportable: bool = True
    cells: dict[str, Cell] = field(default_factory=dict)
    evaluated: int | None = None
    run: str = ""

    @property
    def ranked(self) -> bool:
        """Limits (GT / copy-reference) and --limit smoke runs are shown but never ranked."""
        return self.kind != "limit" and self.reportable


@dataclass
class LeaderboardTable:
    title: str
    columns: list[Column]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    def legend(self) -> str:
        return (
            "↑ higher is better, ↓ lower is better (metric cards). Marks: ¹ best, ² second, ³ third per column "
            "(GT/copy-reference limits and --limit runs not ranked). Measured cells: value ± half-width of the bootstrap 95% CI; "
            "paper rows are as reported in the paper, not measured."
        )


def view_keys(face_model: str = "average") -> list[str]:
    """Candidate metric keys of one view, in card order.

    Identity metrics always carry the face model (``sim_gt.arcface``); other metrics may (the runner's
    ``face_failure_rate.<model>``) or may not (``clip_t``), so both spellings are candidates and the table
    keeps those present in the data.
    """
    keys = []
    for mid in CARDS:
        keys.append(metric_key(mid, face_model))
        if mid not in FACE_MODEL_METRICS:
            keys.append(f"{mid}.{face_model}")
    return keys


def _check_choice(name: str, value: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _provenance_text(r: "pd.Series") -> str:
    if r["provenance"] == PAPER:
        basis = "" if r["subset_stated"] else " (subset inferred)"
        return f"reported in the paper, Table {r['table']}{basis}"
    text = f"measured · {r['protocol']} protocol · {r['bench_id']}@{str(r['manifest_sha256'])[:8]}"
    if r.get("profile"):
        text += f" · profile {r['profile']}"
    if r.get("mbench_version"):
        text += f" · mbench {r['mbench_version']}"
    if not r["reportable"]:
        text += " · --limit run, NOT reportable"
    return text


def build_leaderboard(
    df: "pd.DataFrame",
    *,
    subset: str = "p1",
    protocol: str = "paper",
    face_model: str = "average",
    paper_table: str | None = None,
) -> LeaderboardTable:
    """One leaderboard view.

    Args:
        df: from :func:`~multiid_bench.leaderboard.store.combined_frame` (measured and/or paper rows).
        subset: ``p1``/``p2``/``p3``/``all`` for measured rows; paper rows come from the table matching
            the subset (1a, 2a, 2b) or ``face_model`` (Table 5), unless ``paper_table`` names one.
        protocol: which of the run's protocols to show for measured rows.
        face_model: ``average`` (pooled over face models) or one face model id.
        paper_table: force a paper table (e.g. ``"3"`` for the ablation); ``None`` picks by view.

    Raises:
        ConfigError: an unknown subset, protocol or paper table.
    """
    import pandas as pd

    _check_choice("--subset", subset, SUBSETS)
    _check_choice("--protocol", protocol, PROTOCOLS)
    keys = view_keys(face_model)
    notes: list[str] = []
    parts = []
    if not df.empty:
        all_measured = df[df["provenance"] != PAPER]
        measured = all_measured[(all_measured["subset"] == subset) & (all_measured["protocol"] == protocol)]
        measured = measured[measured["metric_key"].isin(keys)]
        if len(all_measured) and measured.empty:
            have = sorted({f"{p}/{s}" for p, s in zip(all_measured["protocol"], all_measured["subset"])})
            notes.append(f"no measured values for subset {subset!r}, protocol {protocol!r}, face model "
                         f"{face_model!r}; the runs have protocol/subset {', '.join(have)}")
        parts.append(measured)
        if (df["provenance"] == PAPER).any():
            table_id = paper_table or paper_table_for(subset, face_model)
            if table_id is None:
                notes.append(f"the paper reports no table for subset {subset!r} / face model {face_model!r}")
            else:
                if table_id not in paper_meta()["tables"] or table_id in ("1b", "7"):
                    raise ConfigError(f"--paper-table must be one of 1a, 2a, 2b, 3, 5, 6; got {table_id!r}")
                paper = df[(df["provenance"] == PAPER) & (df["table"] == table_id)]
                parts.append(paper[paper["metric_key"].isin(keys)])
                info = paper_meta()["tables"][table_id]
                notes.append(f"paper Table {table_id}: {info['caption']} Subset: {info['subset_basis']}.")
                if info.get("copy_paste_rule"):
                    notes.append(f"paper Table {table_id}: {info['copy_paste_rule']}")
                notes.extend(f"paper Table {table_id}: {n}" for n in info.get("notes", []))
    view = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    present = set(view["metric_key"]) if not view.empty else set()
    columns = [Column(k, get_card(k), k.partition(".")[2] or None) for k in keys if k in present]
    rows: list[Row] = []
    if not view.empty:
        view = view.assign(_row=view["source"].astype(str) + "\x00" + view["display"].astype(str))
        for _, grp in view.groupby("_row", sort=False):
            first = grp.iloc[0]
            measured_row = first["provenance"] != PAPER
            row = Row(
                label=str(first["display"]),
                model=str(first["model"]),
                provenance=str(first["provenance"]),
                provenance_text=_provenance_text(first),
                kind=str(first["row_kind"]),
                n_text=(f"{int(first['evaluated'])}/{int(first['expected'])}" if measured_row else "—"),
                reportable=bool(first["reportable"]) if measured_row else True,
                evaluated=int(first["evaluated"]) if measured_row else None,
                run=str(first["run_path"]) if measured_row else "",
            )
            for _, r in grp.iterrows():
                row.cells[r["metric_key"]] = Cell(
                    value=float(r["value"]),
                    ci_lo=float(r.get("ci_lo", math.nan)) if measured_row else math.nan,
                    ci_hi=float(r.get("ci_hi", math.nan)) if measured_row else math.nan,
                    n=int(r["n"]) if measured_row else None,
                    statistic=str(r.get("statistic", "")) if measured_row else "",
                )
            rows.append(row)
    _disambiguate(rows)
    _rank(rows, columns)
    title = f"MultiID-Bench leaderboard · subset {subset} · {protocol} protocol · face model {face_model}"
    if not rows:
        notes.append("no rows: pass results files (RUN_DIR/results.json) and/or --include-paper")
    return LeaderboardTable(title=title, columns=columns, rows=rows, notes=notes)


def _disambiguate(rows: list[Row]) -> None:
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        seen[(row.label, row.provenance)] = seen.get((row.label, row.provenance), 0) + 1
    for row in rows:
        if row.provenance != PAPER and seen[(row.label, row.provenance)] > 1:
            row.label = f"{row.label} [{Path(row.run).parent.name}]"


def _rank(rows: list[Row], columns: list[Column]) -> None:
    """Mark the best three distinct values per column (ties share a rank), by the card's direction."""
    for col in columns:
        vals = sorted(
            {c.value for r in rows if r.ranked and (c := r.cells.get(col.key)) and not math.isnan(c.value)},
            reverse=col.card.higher_is_better,
        )
        top = {v: i + 1 for i, v in enumerate(vals[:3])}
        for r in rows:
            c = r.cells.get(col.key)
            if c is not None and r.ranked and c.value in top:
                c.rank = top[c.value]
