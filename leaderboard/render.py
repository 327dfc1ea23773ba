"""Render a :class:`~multiid_bench.leaderboard.tables.LeaderboardTable` as rich, Markdown, CSV, LaTeX or HTML.

All formats are exports of the same table object, which is itself built only from validated results
files and the paper data; none of these strings is ever read back as data.
"""
from __future__ import annotations

import csv
import html
import io
import math
from typing import Any

from multiid_bench.errors import ConfigError
from multiid_bench.leaderboard.tables import Cell, LeaderboardTable

__all__ = ["FORMATS", "render", "render_html_fragment", "to_rich"]

FORMATS = ("rich", "markdown", "csv", "latex", "html")
_SUP = {1: "¹", 2: "²", 3: "³"}
_RICH_STYLE = {1: "bold green", 2: "bold yellow", 3: "bold cyan"}
_LATEX = {1: r"\textbf{%s}", 2: r"\underline{%s}", 3: r"\textit{%s}"}


def _mark(cell: Cell | None) -> str:
    if cell is None:
        return ""
    return cell.text() + (_SUP[cell.rank] if cell.rank else "")


def _cell_with_n(cell: Cell | None, evaluated: int | None) -> str:
    text = _mark(cell)
    if cell is not None and cell.n is not None and evaluated is not None and cell.n != evaluated:
        text += f" (n={cell.n})"
    return text


def to_rich(table: LeaderboardTable) -> Any:
    """A ``rich.table.Table`` (ranks coloured and marked, provenance column last)."""
    from rich.table import Table

    t = Table(title=table.title, caption=table.legend(), show_lines=False)
    t.add_column("Model", style="bold")
    for col in table.columns:
        t.add_column(col.header, justify="right")
    t.add_column("n eval/exp (run)", justify="right")
    t.add_column("Provenance")
    for row in table.rows:
        cells = []
        for col in table.columns:
            c = row.cells.get(col.key)
            text = _cell_with_n(c, row.evaluated)
            cells.append(f"[{_RICH_STYLE[c.rank]}]{text}[/]" if c is not None and c.rank else text)
        prov = row.provenance_text if row.reportable else f"[red]{row.provenance_text}[/]"
        label = row.label if row.provenance != "paper" else f"[dim]{row.label}[/]"
        t.add_row(label, *cells, row.n_text, prov)
    return t


def _markdown(table: LeaderboardTable) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    head = ["Model", *[c.header for c in table.columns], "n eval/exp (run)", "Provenance"]
    lines = [f"**{table.title}**", "", "| " + " | ".join(esc(h) for h in head) + " |",
             "|" + "|".join(["---"] + ["---:"] * len(table.columns) + ["---:", "---"]) + "|"]
    for row in table.rows:
        cells = []
        for col in table.columns:
            c = row.cells.get(col.key)
            text = _cell_with_n(c, row.evaluated)
            cells.append(f"**{text}**" if c is not None and c.rank == 1 else text)
        lines.append("| " + " | ".join(esc(x) for x in [row.label, *cells, row.n_text, row.provenance_text]) + " |")
    lines += ["", table.legend(), *[f"- {n}" for n in table.notes]]
    return "\n".join(lines) + "\n"


def _csv(table: LeaderboardTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["model", "label", "provenance", "provenance_detail", "kind", "reportable", "n_eval_exp"]
    for col in table.columns:
        head += [col.key, f"{col.key}.ci_lo", f"{col.key}.ci_hi", f"{col.key}.n", f"{col.key}.rank"]
    w.writerow(head)

    def num(x: float | None) -> str:
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(float(x))

    for row in table.rows:
        out = [row.model, row.label, row.provenance, row.provenance_text, row.kind, row.reportable, row.n_text]
        for col in table.columns:
            c = row.cells.get(col.key)
            out += ["", "", "", "", ""] if c is None else [
                num(c.value), num(c.ci_lo), num(c.ci_hi), "" if c.n is None else c.n, c.rank or ""]
        w.writerow(out)
    return buf.getvalue()


def _latex(table: LeaderboardTable) -> str:
    def esc(s: str) -> str:
        for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                     ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
            s = s.replace(a, b)
        return s.replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$").replace("±", r"$\pm$")

    spec = "l" + "r" * len(table.columns) + "rl"
    head = ["Model", *[c.header for c in table.columns], "n", "Provenance"]
    lines = [r"% " + table.title, r"% 1st \textbf, 2nd \underline, 3rd \textit; paper rows are reported, not measured",
             r"\begin{tabular}{" + spec + "}", r"\toprule", " & ".join(esc(h) for h in head) + r" \\", r"\midrule"]
    for row in table.rows:
        cells = []
        for col in table.columns:
            c = row.cells.get(col.key)
            text = esc(_cell_with_n(c, row.evaluated).rstrip("¹²³"))
            cells.append(_LATEX[c.rank] % text if c is not None and c.rank else text)
        lines.append(" & ".join([esc(row.label), *cells, esc(row.n_text), esc(row.provenance_text)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


HTML_STYLE = """
table.mbench{border-collapse:collapse;font:13px/1.35 system-ui,sans-serif;margin:8px 0}
table.mbench th{background:#1f4e79;color:#fff;padding:5px 8px;text-align:center}
table.mbench td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}
table.mbench td.model,table.mbench td.prov{text-align:left}
table.mbench tr.paper td.model{font-style:italic;color:#555}
table.mbench tr.unreportable td.prov{color:#b00020;font-weight:bold}
table.mbench td.rank1{background:#f8c471;font-weight:bold}
table.mbench td.rank2{background:#fde3b0}
table.mbench td.rank3{background:#fef3dc}
p.legend{font:12px system-ui,sans-serif;color:#444}
"""


def render_html_fragment(table: LeaderboardTable) -> str:
    """A ``<table class="mbench">`` with rank classes and per-cell CI / n tooltips, plus legend and notes."""
    e = html.escape
    out = [f'<table class="mbench"><caption>{e(table.title)}</caption><thead><tr><th>Model</th>']
    out += [f'<th title="{e(c.card.scale)}">{e(c.header)}</th>' for c in table.columns]
    out.append("<th>n eval/exp (run)</th><th>Provenance</th></tr></thead><tbody>")
    for row in table.rows:
        cls = [row.provenance] + ([] if row.reportable else ["unreportable"])
        out.append(f'<tr class="{" ".join(cls)}"><td class="model">{e(row.label)}</td>')
        for col in table.columns:
            c = row.cells.get(col.key)
            if c is None:
                out.append("<td></td>")
                continue
            tip = f"{c.statistic} n={c.n} CI95=[{c.ci_lo:.4f}, {c.ci_hi:.4f}]" if c.has_ci else row.provenance_text
            rank = f' class="rank{c.rank}"' if c.rank else ""
            out.append(f'<td{rank} title="{e(tip)}">{e(_cell_with_n(c, row.evaluated))}</td>')
        out.append(f'<td>{e(row.n_text)}</td><td class="prov">{e(row.provenance_text)}</td></tr>')
    out.append("</tbody></table>")
    out.append(f'<p class="legend">{e(table.legend())}</p>')
    out += [f'<p class="legend">{e(n)}</p>' for n in table.notes]
    return "\n".join(out)


def _html(table: LeaderboardTable) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(table.title)}</title>"
            f"<style>{HTML_STYLE}</style></head><body>{render_html_fragment(table)}</body></html>\n")


def render(table: LeaderboardTable, fmt: str) -> str:
    """Text of ``table`` in ``fmt`` (``markdown``, ``csv``, ``latex``, ``html``; ``rich`` gives plain text)."""
    if fmt == "markdown":
        return _markdown(table)
    if fmt == "csv":
        return _csv(table)
    if fmt == "latex":
        return _latex(table)
    if fmt == "html":
        return _html(table)
    if fmt == "rich":
        from rich.console import Console

        console = Console(record=True, width=220, file=io.StringIO())
        console.print(to_rich(table))
        for n in table.notes:
            console.print(f"- {n}", markup=False)
        return console.export_text()
    raise ConfigError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
