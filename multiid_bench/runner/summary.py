"""Human-readable views of ``results.json``: a table per subset and face model (printed and written).

``summary.md`` shows the headline protocol first, then the other; ``summary.csv`` is the long format
(protocol, subset, face model, metric, value, n, CI) of every metric. Both are exports of
``results.json``, never a primary source.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Mapping

from multiid_bench.metrics.cards import get_card, undefined_for_subset

__all__ = ["COLUMNS", "counts_line", "face_rows_with_values", "summary_table", "write_summaries"]

#: (metric id, column header) of the wide table.
#: Copy-paste twice: over every case with a value (what the official script prints) and over the cases
#: passing the paper's Sim(GT) filter (what the paper's tables rank; compare paper rows with this one).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("sim_gt", "Sim(GT)"), ("sim_ref", "Sim(Ref)"), ("copy_paste", "CP all cases"),
    ("copy_paste_ranked", "CP Sim(GT)-filtered (paper)"),
    ("blend_gt", "Blend(GT)"), ("blend_ref", "Blend(Ref)"), ("face_failure_rate", "Face failures"),
)
_SUBSET_ORDER = ("p1", "p2", "p3", "all")


def _fmt(entry: Mapping[str, Any] | None) -> str:
    if not entry or entry.get("value") is None:
        return "-"
    s = f"{entry['value']:.4f}"
    ci = entry.get("ci95")
    if ci:
        s += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return s


def summary_table(results: Mapping[str, Any], protocol: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows (subset x face model, incl. the cross-model average) for ``protocol``."""
    block = results["metrics"][protocol]
    models = [m["name"] for m in results.get("face_models", [])] + ["average"]
    header = ["subset", "face model", "n"] + [
        f"{title} {get_card(mid).arrow}" for mid, title in COLUMNS if protocol == "strict" or mid != "face_failure_rate"
    ]
    rows: list[list[str]] = []
    for subset in [s for s in _SUBSET_ORDER if s in block]:
        for m in models:
            cells = [subset, m, str(block[subset].get(f"sim_gt.{m}", {}).get("n", 0))]
            for mid, _ in COLUMNS:
                if mid == "face_failure_rate" and protocol != "strict":
                    continue
                # Blending is undefined for one person: N/A, not the official code's 0.0 (issue 29)
                cells.append("N/A" if undefined_for_subset(mid, subset) else _fmt(block[subset].get(f"{mid}.{m}")))
            rows.append(cells)
    return header, rows


def face_rows_with_values(rows: list[list[str]]) -> list[list[str]]:
    """The rows of :func:`summary_table` that hold at least one value (a judged bench without GT leaves
    most face cells empty; an all-empty table says nothing). ``N/A`` (single-person Blending) is no value."""
    return [r for r in rows if any(c not in ("-", "N/A") for c in r[3:])]


def counts_line(counts: Mapping[str, Any]) -> str:
    """One sentence for a run's ``counts``, every status named (the console and ``summary.md`` share it).

    Example:
        >>> counts_line({"expected": 5, "evaluated": 4, "ok": 3, "missing_faces": 1, "failed": 0, "not_applicable": 1})
        '4/5 cases evaluated (3 ok, 1 scored with missing faces), 0 failed, 1 not applicable'
    """
    text = (f"{counts['evaluated']}/{counts['expected']} cases evaluated (")
    text += f"{counts.get('ok', 0)} ok, {counts.get('missing_faces', 0)} scored with missing faces), "
    text += f"{counts['failed']} failed, {counts.get('not_applicable', 0)} not applicable"
    if counts.get("pending"):
        text += f", {counts['pending']} pending"
    return text


def _general_lines(results: Mapping[str, Any], protocol: str) -> list[str]:
    lines = []
    block = results["metrics"][protocol].get("all", {})
    for metric in ("clip_i", "clip_t", "aesthetic"):
        entry = block.get(metric) or {}
        if entry.get("value") is None:
            lines.append(f"- {get_card(metric).name}: missing ({entry.get('missing_reason') or 'no values'})")
        else:
            lines.append(f"- {get_card(metric).name}: {_fmt(entry)} (n={entry['n']})")
    return lines


def _markdown(results: Mapping[str, Any]) -> str:
    head = results["protocol"]
    other = "strict" if head == "paper" else "paper"
    c = results["counts"]
    out = [
        f"# {results['model']} on {results['bench']['id']}",
        "",
        f"profile `{results['profile'].get('name', '?')}`, headline protocol `{head}`, {counts_line(c)}"
        + ("" if results["reportable"] else " — **not reportable** (--limit or incomplete)"),
        "",
    ]
    from multiid_bench.judge.stats import judge_summary_lines

    for proto in (head, other):
        header, rows = summary_table(results, proto)
        stat = "plain mean [95% bootstrap CI]" if proto == "strict" else "IQR-trimmed mean (official statistic)"
        out += [f"## {proto} protocol ({stat})", ""]
        judged = judge_summary_lines(results["metrics"][proto])  # OmniContext PF/SC/Overall: the run's headline
        out += judged
        rows = face_rows_with_values(rows) if judged else rows
        if rows:
            out += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            out += ["| " + " | ".join(r) + " |" for r in rows]
        out += ["", *_general_lines(results, proto), ""]
    if c.get("irregular"):
        out += ["## Irregular bench rows (evaluated, as the official conversion does)", ""]
        out += [f"- {n} x {kind}" for kind, n in results.get("irregularities", {}).items()] + [""]
    if c.get("missing_faces"):
        rules = results.get("missing_faces") or {}
        out += ["## Scored with missing faces (a model outcome, not a failure)", ""]
        out += [f"- {n} x {reason}" for reason, n in (rules.get("reasons") or {}).items()]
        out += [f"- paper protocol: {rules.get('paper')}", f"- strict protocol: {rules.get('strict')}", ""]
    if results.get("failures"):
        out += ["## Failures", ""] + [f"- {n} x {reason}" for reason, n in results["failures"].items()] + [""]
    return "\n".join(out)


def _csv(results: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["protocol", "subset", "metric", "face_model", "value", "n", "ci95_lo", "ci95_hi", "statistic"])
    for proto, block in results["metrics"].items():
        for subset in [s for s in _SUBSET_ORDER if s in block] + sorted(s for s in block if s not in _SUBSET_ORDER):
            for key, e in sorted(block[subset].items()):
                metric, _, model = key.partition(".")
                ci = e.get("ci95") or [None, None]
                w.writerow([proto, subset, metric, model, e.get("value"), e.get("n"), ci[0], ci[1], e.get("statistic")])
    return buf.getvalue()


def write_summaries(out: Path, results: Mapping[str, Any]) -> None:
    """Write ``summary.md`` and ``summary.csv`` next to ``results.json``."""
    (out / "summary.md").write_text(_markdown(results), encoding="utf-8")
    (out / "summary.csv").write_text(_csv(results), encoding="utf-8")
