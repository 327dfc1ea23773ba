"""Render a :class:`~multiid_bench.leaderboard.tables.LeaderboardTable` as rich, Markdown, CSV, LaTeX or HTML.

All formats are exports of the same table object, which is itself built only from validated results
files and the paper data; none of these strings is ever read back as data.
"""
from __future__ import annotations

import csv
import html
import io
import math
import re
from typing import Any

from multiid_bench.errors import ConfigError
from multiid_bench.leaderboard.tables import Cell, LeaderboardTable, Row

__all__ = ["FORMATS", "latex_escape", "markdown_escape", "one_line", "print_rich", "render", "render_html_fragment",
           "to_rich"]

FORMATS = ("rich", "markdown", "csv", "latex", "html")
_SUP = {1: "¹", 2: "²", 3: "³"}
_RICH_STYLE = {1: "bold green", 2: "bold yellow", 3: "bold cyan"}
_LATEX = {1: r"\textbf{%s}", 2: r"\underline{%s}", 3: r"\textit{%s}"}
_GREY_NOTE = "greyed rows are not ranked (not comparable with the view; the reason is printed above the table)"


def _mark(cell: Cell | None) -> str:
    if cell is None:
        return ""
    return cell.text() + (_SUP[cell.rank] if cell.rank else "")


def _n_differs(cell: Cell | None, evaluated: int | None) -> bool:
    return cell is not None and cell.n is not None and evaluated is not None and cell.n != evaluated


def _cell_with_n(cell: Cell | None, evaluated: int | None) -> str:
    text = _mark(cell)
    if _n_differs(cell, evaluated):
        text += f" (n={cell.n})"  # type: ignore[union-attr]
    return text


def _greyed(row: Row) -> bool:
    return not row.comparable


def _rich_label(row: Row) -> str:
    """Plain text loses the grey: a greyed row also says so in its name cell."""
    return f"{row.label} (not ranked)" if _greyed(row) else row.label


def _rich_table(table: LeaderboardTable, *, provenance: bool, columns: list[Any] | None = None,
                caption: bool = True) -> Any:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    columns = table.columns if columns is None else columns
    t = Table(title=escape(table.title), caption=escape(table.legend()) if caption else None, show_lines=False,
              box=box.SIMPLE_HEAD,
              title_justify="left", caption_justify="left", pad_edge=False, show_edge=False)
    # names never wrap: the column is as wide as the longest name; metric headers wrap only at spaces
    t.add_column("Model", style="bold", no_wrap=True, min_width=max([len(_rich_label(r)) for r in table.rows] + [5]))
    for col in columns:
        t.add_column(escape(col.header), justify="right")
    if provenance:
        t.add_column("n eval/exp (run)", justify="right")
        t.add_column("Provenance")
    for row in table.rows:
        cells = []
        for col in columns:
            c = row.cells.get(col.key)
            text = _cell_with_n(c, row.evaluated)
            text = escape(text)
            cells.append(f"[{_RICH_STYLE[c.rank]}]{text}[/]" if c is not None and c.rank else text)
        label = escape(_rich_label(row)) if row.provenance != "paper" else f"[dim]{escape(row.label)}[/]"
        extra = []
        if provenance:
            prov = escape(row.provenance_text)
            extra = [escape(row.n_text), prov if row.reportable else f"[red]{prov}[/]"]
        t.add_row(label, *cells, *extra, style="dim italic" if _greyed(row) else None)
    return t


def to_rich(table: LeaderboardTable, *, width: int | None = None, provenance: bool = True) -> Any:
    """A ``rich.table.Table`` (ranks coloured and marked, greyed rows dim, provenance column last).

    With ``width`` (the console's), the n and provenance columns move below the table when the table
    would not fit, so that no name or number is broken across lines.
    """
    t = _rich_table(table, provenance=provenance)
    if width is None or _table_width(t) <= width:
        return t
    if provenance:
        t = _rich_table(table, provenance=False)
        if _table_width(t) <= width:
            return t
    # rich would shrink the widest columns first and cut words ("Copy-Pa…"); instead fix each column at its
    # longest word, so headers and cells wrap only at spaces; then drop the cell padding; then split the
    # metric columns over several tables (each with the names) rather than break anything
    from rich.cells import cell_len
    from rich.console import Group

    words = {col.key: max(cell_len(w) for x in [col.header] + [_cell_with_n(r.cells.get(col.key), r.evaluated)
                                                                 for r in table.rows] for w in x.split())
             for col in table.columns}

    def fixed(cols: list[Any], first: bool) -> Any:
        sub = _rich_table(table, provenance=False, columns=cols, caption=False)
        sub.title = sub.title if first else None
        for col, rcol in zip(cols, sub.columns[1:]):
            rcol.min_width = rcol.max_width = words[col.key]
        if _table_width(sub) > width:
            sub.padding = (0, 0)
        return sub

    t = fixed(list(table.columns), True)
    if _table_width(t) <= width or len(table.columns) < 2:
        t.caption = _rich_table(table, provenance=False).caption
        return t
    name_w = max([len(_rich_label(r)) for r in table.rows] + [5])
    chunks: list[list[Any]] = [[]]
    for col in table.columns:
        if chunks[-1] and name_w + sum(words[c.key] + 1 for c in chunks[-1]) + words[col.key] + 1 > width:
            chunks.append([])
        chunks[-1].append(col)
    from rich.text import Text

    return Group(*[fixed(cols, i == 0) for i, cols in enumerate(chunks)], Text(table.legend()))


def _table_width(t: Any) -> int:
    from rich.console import Console
    from rich.measure import Measurement

    console = Console(width=100_000, file=io.StringIO())
    return Measurement.get(console, console.options, t).maximum


def print_rich(table: LeaderboardTable, console: Any, *, provenance: bool = True) -> None:
    """Banners, the table (fitted to the console's width) and its notes, as the CLI shows them."""
    for b in table.banners:
        console.print(f"! {b}", style="yellow", markup=False, highlight=False)
    t = to_rich(table, width=console.width, provenance=provenance)
    console.print(t)
    moved = provenance and (not hasattr(t, "columns") or len(t.columns) == len(table.columns) + 1)
    if moved:
        console.print("Provenance:", markup=False, highlight=False)
        groups: dict[str, list[Row]] = {}
        for row in table.rows:
            groups.setdefault(row.provenance_text, []).append(row)
        for text, rows in groups.items():
            who = ", ".join(r.label + (f" (n eval/exp {r.n_text})" if r.provenance != "paper" else "") for r in rows)
            console.print(f"  {text}: {who}", markup=False, highlight=False,
                          style=None if all(r.reportable for r in rows) else "red")
    if any(_greyed(r) for r in table.rows):
        console.print(f"- {_GREY_NOTE}", markup=False, highlight=False)
    for n in table.notes:
        console.print(f"- {n}", markup=False, highlight=False)


def one_line(text: object) -> str:
    """Text with every line break and control character made a space: a model name or note holding a newline
    can end a LaTeX comment or a markdown row and inject what follows (every format goes through this)."""
    import unicodedata

    return "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in str(text))


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def markdown_escape(text: object) -> str:
    """Plain text -> one markdown table cell: one line, markup characters backslash-escaped.

    Example:
        >>> print(markdown_escape("a|b*\\nc"))
        a\\|b\\* c
    """
    return _MD_SPECIAL.sub(r"\\\1", one_line(text))


def _markdown(table: LeaderboardTable, provenance: bool = True) -> str:
    esc = markdown_escape

    head = ["Model", *[c.header for c in table.columns], *(["n eval/exp (run)", "Provenance"] if provenance else [])]
    lines = [f"**{esc(table.title)}**", ""]
    lines += [f"> ⚠ {esc(b)}" for b in table.banners] + ([""] if table.banners else [])
    lines += ["| " + " | ".join(esc(h) for h in head) + " |",
              "|" + "|".join(["---"] + ["---:"] * len(table.columns) + (["---:", "---"] if provenance else [])) + "|"]
    for row in table.rows:
        cells = []
        for col in table.columns:
            c = row.cells.get(col.key)
            text = esc(_cell_with_n(c, row.evaluated))
            cells.append(f"**{text}**" if c is not None and c.rank == 1 else text)
        label = f"*{esc(row.label)}* (not ranked)" if _greyed(row) else esc(row.label)
        extra = [esc(row.n_text), esc(row.provenance_text)] if provenance else []
        lines.append("| " + " | ".join([label, *cells, *extra]) + " |")
    lines += ["", esc(table.legend()), *[f"- {esc(n)}" for n in table.notes]]
    return "\n".join(lines) + "\n"


def _csv(table: LeaderboardTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["model", "label", "provenance", "provenance_detail", "kind", "reportable", "ranked", "not_ranked_reason",
            "n_eval_exp"]
    for col in table.columns:
        head += [col.key, f"{col.key}.ci_lo", f"{col.key}.ci_hi", f"{col.key}.n", f"{col.key}.rank"]
    w.writerow(head)

    def num(x: float | None) -> str:
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(float(x))

    for row in table.rows:
        out = [row.model, row.label, row.provenance, row.provenance_text, row.kind, row.reportable, row.ranked,
               row.not_ranked_reason, row.n_text]
        for col in table.columns:
            c = row.cells.get(col.key)
            out += ["", "", "", "", ""] if c is None else [
                num(c.value), num(c.ci_lo), num(c.ci_hi), "" if c.n is None else c.n, c.rank or ""]
        w.writerow(out)
    return buf.getvalue()


_TEX_SPECIAL = (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                ("$", r"\$"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\textasciicircum{}"))
_TEX_SYMBOLS = (("↑", r"$\uparrow$"), ("↓", r"$\downarrow$"), ("±", r"$\pm$"), ("·", r"$\cdot$"), ("—", "---"),
                ("−", "$-$"), ("≥", r"$\geq$"), ("<", r"$<$"), (">", r"$>$"))


def latex_escape(text: str) -> str:
    """Plain text -> LaTeX (one line, special characters escaped, arrows and ± as math, a leading '[' guarded)."""
    text = one_line(text)
    for a, b in _TEX_SPECIAL:
        text = text.replace(a, b)
    for a, b in _TEX_SYMBOLS:
        text = text.replace(a, b)
    return "{}" + text if text.startswith("[") else text


def _latex_number(cell: Cell) -> str:
    """A cell's value (and CI half-width) with a math minus sign; no rank marks, no (n=...)."""
    text = latex_escape(cell.text())
    return re.sub(r"(?<![\w.])-(?=\d)", "$-$", text)


def _latex(table: LeaderboardTable, provenance: bool = True) -> str:
    grey = any(_greyed(r) for r in table.rows)
    spec = "l" + "r" * len(table.columns) + ("rl" if provenance else "")
    head = ["Model", *[c.header for c in table.columns], *(["n", "Provenance"] if provenance else [])]
    pkgs = r"\usepackage{booktabs}" + (r" \usepackage{xcolor}" if grey else "")
    lines = [f"% {one_line(table.title)}", f"% needs {pkgs}",
             r"% best \textbf, second \underline, third \textit per column; paper rows are reported, not measured"]
    lines += [f"% NOT RANKED: {one_line(b)}" for b in table.banners]
    n_notes = [f"{r.label}: {c.header} over n={cell.n} of {r.evaluated} evaluated cases"
               for r in table.rows for c in table.columns
               if (cell := r.cells.get(c.key)) is not None and _n_differs(cell, r.evaluated)]
    lines += [f"% {one_line(n)}" for n in table.notes + n_notes]  # a line break would end the comment
    lines += [r"\begin{tabular}{" + spec + "}", r"\toprule", " & ".join(latex_escape(h) for h in head) + r" \\",
              r"\midrule"]
    for row in table.rows:
        cells = []
        for col in table.columns:
            c = row.cells.get(col.key)
            text = "" if c is None else _latex_number(c)
            cells.append(_LATEX[c.rank] % text if c is not None and c.rank else text)
        extra = [latex_escape(row.n_text), latex_escape(row.provenance_text)] if provenance else []
        out = [latex_escape(row.label), *cells, *extra]
        if _greyed(row):
            out = [r"\textcolor{gray}{%s}" % x if x else x for x in out]
        lines.append(" & ".join(out) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


HTML_STYLE = """
table.mbench{border-collapse:collapse;font:13px/1.35 system-ui,sans-serif;margin:8px 0}
table.mbench th{background:#1f4e79;color:#fff;padding:5px 8px;text-align:center}
table.mbench td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}
table.mbench td.model,table.mbench td.prov{text-align:left}
table.mbench tr.paper td.model{font-style:italic;color:#555}
table.mbench tr.unreportable td.prov{color:#b00020;font-weight:bold}
table.mbench tr.incomparable td{color:#9a9a9a;font-style:italic;background:#f4f4f4}
table.mbench td.rank1{background:#f8c471;font-weight:bold}
table.mbench td.rank2{background:#fde3b0}
table.mbench td.rank3{background:#fef3dc}
p.legend{font:12px system-ui,sans-serif;color:#444}
p.banner{font:13px system-ui,sans-serif;background:#fff4d6;border:1px solid #c99a00;padding:4px 8px;margin:4px 0}
"""


def render_html_fragment(table: LeaderboardTable, *, provenance: bool = True) -> str:
    """A ``<table class="mbench">`` with rank classes and per-cell CI / n tooltips, plus banners, legend, notes."""
    e = html.escape
    out = [f'<p class="banner">&#9888; {e(b)}</p>' for b in table.banners]
    out.append(f'<table class="mbench"><caption>{e(table.title)}</caption><thead><tr><th>Model</th>')
    out += [f'<th title="{e(c.card.scale)}">{e(c.header)}</th>' for c in table.columns]
    out.append(("<th>n eval/exp (run)</th><th>Provenance</th>" if provenance else "") + "</tr></thead><tbody>")
    for row in table.rows:
        cls = [row.provenance] + ([] if row.reportable else ["unreportable"]) + (["incomparable"] if _greyed(row) else [])
        title = f' title="{e(row.not_ranked_reason)}"' if row.not_ranked_reason else ""
        out.append(f'<tr class="{" ".join(cls)}"{title}><td class="model">{e(row.label)}</td>')
        for col in table.columns:
            c = row.cells.get(col.key)
            if c is None:
                out.append("<td></td>")
                continue
            tip = f"{c.statistic} n={c.n} CI95=[{c.ci_lo:.4f}, {c.ci_hi:.4f}]" if c.has_ci else row.provenance_text
            rank = f' class="rank{c.rank}"' if c.rank else ""
            out.append(f'<td{rank} title="{e(tip)}">{e(_cell_with_n(c, row.evaluated))}</td>')
        if provenance:
            out.append(f'<td>{e(row.n_text)}</td><td class="prov">{e(row.provenance_text)}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    out.append(f'<p class="legend">{e(table.legend())}</p>')
    if any(_greyed(r) for r in table.rows):
        out.append(f'<p class="legend">{e(_GREY_NOTE)}</p>')
    out += [f'<p class="legend">{e(n)}</p>' for n in table.notes]
    return "\n".join(out)


def _html(table: LeaderboardTable, provenance: bool = True) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(table.title)}</title>"
            f"<style>{HTML_STYLE}</style></head><body>{render_html_fragment(table, provenance=provenance)}"
            "</body></html>\n")


def render(table: LeaderboardTable, fmt: str, *, provenance: bool = True, width: int = 220) -> str:
    """Text of ``table`` in ``fmt`` (``markdown``, ``csv``, ``latex``, ``html``; ``rich`` gives plain text).

    ``provenance=False`` leaves out the n and provenance columns (the CSV always keeps them); ``width`` is
    the line width of the ``rich`` text.
    """
    if fmt == "markdown":
        return _markdown(table, provenance)
    if fmt == "csv":
        return _csv(table)
    if fmt == "latex":
        return _latex(table, provenance)
    if fmt == "html":
        return _html(table, provenance)
    if fmt == "rich":
        from rich.console import Console

        console = Console(record=True, width=width, file=io.StringIO())
        print_rich(table, console, provenance=provenance)
        return console.export_text()
    raise ConfigError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
