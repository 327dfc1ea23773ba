"""Leaderboard tables: pick one view (subset, protocol, face model) of the tidy frame, rank, format.

Arrows, names and ranking direction come from the metric cards (for a paper-only column without a card,
from the paper's own printed header). Rows from the paper and measured rows sit in one table but keep
their provenance column; the oracle rows (GT / copy-reference, the paper's "experimental limits") are
shown but never ranked, as in the paper. Ranks are computed only among mutually comparable rows
(:mod:`.comparability`): a row made on another bench, subset, protocol, profile or metric version is
shown greyed with the reason, never ranked, unless ``allow_mixed``.
"""
from __future__ import annotations

import math
from pathlib import Path
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from multiid_bench.errors import ConfigError
from multiid_bench.leaderboard.comparability import comparable_set, frame_key
from multiid_bench.leaderboard.paper import (
    PAPER,
    PER_FACE_MODEL,
    metric_key,
    normalise_subset,
    paper_meta,
    paper_table_for,
)
from multiid_bench.metrics.cards import CARDS, MetricCard, get_card, undefined_for_subset

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MIN_CI_N", "Cell", "Column", "LeaderboardTable", "Row", "build_leaderboard", "view_keys"]

SUBSETS = ("p1", "p2", "p3", "all")
#: A bootstrap CI over fewer cases than this is not shown in text formats (it would look more certain
#: than it is); the table says so in a note, and the CSV keeps the exact bounds.
MIN_CI_N = 10
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


def _paper_card(key: str, label: str, table_id: str) -> MetricCard:
    """A column the paper prints but mbench has no card for (yet): name and direction as printed."""
    name = label.replace("↑", "").replace("↓", "").strip()
    return MetricCard(
        id=key, name=name, version="paper", higher_is_better="↓" not in label, range=(-math.inf, math.inf),
        scale="as printed in the paper", definition=f"the paper's Table {table_id} column {label!r}",
        inputs=(), aggregation="as reported in the paper", read_by=(f"Table {table_id}",))


@dataclass
class Cell:
    value: float
    ci_lo: float = math.nan
    ci_hi: float = math.nan
    n: int | None = None
    rank: int | None = None
    statistic: str = ""
    printed: str | None = None  # a paper cell's text exactly as printed ("8.13", "N/A")

    @property
    def has_ci(self) -> bool:
        return not (math.isnan(self.ci_lo) or math.isnan(self.ci_hi))

    @property
    def ci_shown(self) -> bool:
        """A CI is shown only over at least :data:`MIN_CI_N` cases."""
        return self.has_ci and (self.n is None or self.n >= MIN_CI_N)

    def text(self, digits: int = 3) -> str:
        if self.printed is not None:
            return self.printed
        if math.isnan(self.value):
            return "N/A"
        out = f"{self.value:.{digits}f}"
        if self.ci_shown:
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
    comparable: bool = True
    not_ranked_reason: str = ""

    @property
    def ranked(self) -> bool:
        """Limits (GT / copy-reference), --limit runs and rows not comparable with the view are never ranked."""
        return self.kind != "limit" and self.reportable and self.comparable


@dataclass
class LeaderboardTable:
    title: str
    columns: list[Column]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    banners: list[str] = field(default_factory=list)

    def legend(self) -> str:
        return (
            "↑ higher is better, ↓ lower is better (metric cards). Marks: ¹ best, ² second, ³ third per column "
            "(GT/copy-reference limits, --limit runs and rows not comparable with the view are not ranked). "
            f"Measured cells: value ± half-width of the bootstrap 95% CI (shown when n >= {MIN_CI_N}); "
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
        if mid not in PER_FACE_MODEL:
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


def _resolve_subset(subset: str | None, paper_table: str | None, measured: set[str]) -> tuple[str, str | None]:
    """The subset to show and, when it was chosen for the user, the note that says so.

    ``None`` means: the subset of ``paper_table`` when one is named; else ``p1`` (MultiID-Bench's headline);
    else, when no measured run has a p1 value (an OmniContext run), the paper's main subset among the runs' own
    (``single_character``, Table 1b), or their first subset, so the natural command shows the run.
    """
    if subset is not None:
        return subset, None
    if paper_table is not None and paper_table in paper_meta()["tables"]:
        return str(paper_meta()["tables"][paper_table]["subset"]), None
    have = {normalise_subset(m): m for m in measured}
    if not have or "p1" in have:
        return "p1", None
    main = [str(s) for s in paper_meta().get("main_tables", {}) if normalise_subset(str(s)) in have]
    chosen = have[normalise_subset(main[0])] if main else sorted(have.values())[0]
    return chosen, (f"subset {chosen!r} chosen because the runs have no p1 (their subsets: "
                    f"{', '.join(sorted(have.values()))}); pass --subset to pick another")


def build_leaderboard(
    df: "pd.DataFrame",
    *,
    subset: str | None = None,
    protocol: str = "paper",
    face_model: str = "average",
    paper_table: str | None = None,
    allow_mixed: bool = False,
) -> LeaderboardTable:
    """One leaderboard view.

    Args:
        df: from :func:`~multiid_bench.leaderboard.store.combined_frame` (measured and/or paper rows).
        subset: ``p1``/``p2``/``p3``/``all`` (or a subset the runs recorded) for measured rows; ``None``:
            the subset of ``paper_table`` when one is named, else ``p1``. Paper rows come from the table
            matching the subset (1a, 2a, 2b) or ``face_model`` (Table 5), unless ``paper_table`` names one.
        protocol: which of the run's protocols to show for measured rows.
        face_model: ``average`` (pooled over face models) or one face model id.
        paper_table: force a paper table (``"1b"`` OmniContext, ``"3"`` the ablation ...); ``None`` picks by view.
        allow_mixed: rank rows that are not comparable with each other (a warning says which).

    Raises:
        ConfigError: an unknown subset, protocol or paper table.
    """
    import pandas as pd

    measured_subsets = set(df.loc[df["provenance"] != PAPER, "subset"]) if not df.empty else set()
    valued = (set(df.loc[(df["provenance"] != PAPER) & df["value"].notna(), "subset"]) if not df.empty else set())
    subset, subset_note = _resolve_subset(subset, paper_table, valued)
    paper_subsets = {str(t["subset"]) for t in paper_meta()["tables"].values()}
    known = (*SUBSETS, *sorted(measured_subsets - set(SUBSETS)), *sorted(paper_subsets))
    if not any(normalise_subset(k) == normalise_subset(subset) for k in known):  # one spelling rule for all
        _check_choice("--subset", subset, known)
    _check_choice("--protocol", protocol, PROTOCOLS)
    keys = view_keys(face_model)
    notes: list[str] = [subset_note] if subset_note else []
    parts = []
    table_id = None
    extra_cards: dict[str, MetricCard] = {}
    if not df.empty:
        all_measured = df[df["provenance"] != PAPER]
        same_subset = all_measured["subset"].map(normalise_subset) == normalise_subset(subset)
        measured = all_measured[same_subset & (all_measured["protocol"] == protocol)]
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
                if table_id not in paper_meta()["tables"] or table_id == "7":
                    raise ConfigError(f"--paper-table must be one of 1a, 1b, 2a, 2b, 3, 5, 6; got {table_id!r} "
                                      "(Table 7 is 'mbench correlate')")
                paper = df[(df["provenance"] == PAPER) & (df["table"] == table_id)]
                if paper.empty:  # e.g. Table 1b (OmniContext) when the frame kept MultiID-Bench tables only
                    from multiid_bench.leaderboard.paper import load_paper_results

                    paper = load_paper_results([table_id])
                for k, lab in zip(paper["metric_key"], paper["column_label"]):
                    if k.split(".")[0] not in CARDS and k not in extra_cards:
                        extra_cards[k] = _paper_card(k, str(lab), table_id)
                keys = keys + list(extra_cards)
                parts.append(paper[paper["metric_key"].isin(keys)])
                info = paper_meta()["tables"][table_id]
                notes.append(f"paper Table {table_id}: {info['caption']} Subset: {info['subset_basis']}.")
                if info.get("copy_paste_rule"):
                    notes.append(f"paper Table {table_id}: {info['copy_paste_rule']}")
                notes.extend(f"paper Table {table_id}: {n}" for n in info.get("notes", []))
    view = pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(
        not p.empty for p in parts) else pd.DataFrame()
    present = set(view["metric_key"]) if not view.empty else set()
    columns = [Column(k, extra_cards.get(k) or get_card(k), k.partition(".")[2] or None) for k in keys if k in present]
    rows: list[Row] = []
    row_keys = []
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
                    printed=None if measured_row else str(r["value_text"]),
                )
            rows.append(row)
            row_keys.append(first)
    _disambiguate(rows)
    keys_of_rows = [frame_key(r, label=row.label) for r, row in zip(row_keys, rows)]
    verdict = comparable_set(keys_of_rows, allow_mixed=allow_mixed)
    for row, key in zip(rows, keys_of_rows):  # a judged number is read next to its judge
        if row.provenance != PAPER and key.judge is not None:
            row.provenance_text += f" · judge {key.judge.text()}"
    for row, ok, why in zip(rows, verdict.ranked, verdict.reasons):
        row.comparable = ok or not row.reportable  # --limit rows keep their own (red) flag
        row.not_ranked_reason = why
    _rank(rows, columns)
    if any(undefined_for_subset(c.key.split(".")[0], subset) for c in columns) and any(
            r.provenance != PAPER for r in rows):  # issue 29
        notes.append(f"Blending is undefined on single-person cases ({subset}): N/A under both protocols, never "
                     "ranked (the official code writes 0.0 there; the paper leaves the column empty)")
    small_ci = sorted({f"{r.label} {c.key} (n={cell.n})" for r in rows for c in columns
                       if (cell := r.cells.get(c.key)) is not None and cell.has_ci and not cell.ci_shown})
    if small_ci:
        notes.append(f"CI not shown where n < {MIN_CI_N} (too few cases for a bootstrap interval): "
                     + ", ".join(small_ci) + "; the CSV keeps the bounds")
    judged = any(k.judge is not None for k in keys_of_rows)
    title = _title(subset, protocol, face_model, table_id, has_measured=any(r.provenance != PAPER for r in rows),
                   judged=judged)
    if not rows:
        notes.append("no rows: pass results files (RUN_DIR/results.json) and/or --include-paper")
    return LeaderboardTable(title=title, columns=columns, rows=rows, notes=notes,
                            banners=verdict.banners([r.label for r in rows]))


def _title(subset: str, protocol: str, face_model: str, table_id: str | None, *, has_measured: bool,
           judged: bool = False) -> str:
    """Named by what the table is: the paper table's bench and subset when it shows one; a view of judged
    runs (OmniContext, VLM judge) is an OmniContext table."""
    info = paper_meta()["tables"].get(table_id or "", {})
    bench = info.get("benchmark", "OmniContext" if judged else "MultiID-Bench")
    parts = [f"{bench} leaderboard", f"subset {info.get('subset', subset) if not has_measured else subset}"]
    if has_measured:
        parts.append(f"{protocol} protocol")
    if table_id is not None:
        parts.append(f"paper Table {table_id}" + (f" (subset {info['subset']})"
                                                   if has_measured and info.get("subset") != subset else ""))
    if bench == "MultiID-Bench":
        parts.append(f"face model {face_model}")
    return " · ".join(parts)


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
