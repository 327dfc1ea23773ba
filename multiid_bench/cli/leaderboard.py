"""``mbench leaderboard | plot-tradeoff | report | compare | correlate``: thin commands over multiid_bench.leaderboard.

Each command parses flags, calls one library function and prints. pandas, matplotlib and scipy are
imported inside the commands, so ``mbench <command> --help`` stays fast.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import click

SUBSETS = click.Choice(["p1", "p2", "p3", "all"])
PROTOCOLS = click.Choice(["paper", "strict"])


def _console() -> Any:
    """The terminal's width on a terminal; piped, ``$COLUMNS`` or 200 (tables never break words either way)."""
    import os

    from rich.console import Console

    if sys.stdout.isatty():
        width = shutil.get_terminal_size((200, 40)).columns
    else:
        width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else 200
    return Console(width=width, soft_wrap=False)


class RunSource(click.ParamType):
    """A run folder, a results.json, or ``hf://USER/NAME[@REVISION]`` (a run pushed with ``mbench push``)."""

    name = "RUN"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        if str(value).startswith("hf://"):
            return str(value)
        return str(click.Path(exists=True).convert(value, param, ctx))


RUN_SOURCE = RunSource()


def _load(source: str) -> Any:
    """One run (local, or a Hub dataset through the Hugging Face cache: leaderboard/hub.py)."""
    from multiid_bench.leaderboard.hub import resolve_run_source
    from multiid_bench.leaderboard.store import load_results

    return load_results(resolve_run_source(source))


def _runs(paths: tuple[str, ...]) -> list[Any]:
    return [_load(p) for p in paths]


subset_opt = click.option("--subset", default=None,
                          help="Bench subset: p1 single person, p2 two, p3 three-four, all (or a subset the runs "
                               "recorded). Default: the subset of --paper-table, else p1; for runs with no p1 values "
                               "(OmniContext) their main subset, with a note.")
allow_mixed_opt = click.option("--allow-mixed", is_flag=True, default=False,
                               help="Rank rows that are not comparable (other bench, subset, protocol, profile or "
                                    "metric versions) together; prints a warning for each.")
protocol_opt = click.option("--protocol", type=PROTOCOLS, default="paper", show_default=True,
                            help="Which protocol of the measured runs to show.")
face_model_opt = click.option("--face-model", default="average", show_default=True,
                              help="Face model of the identity metrics (average = pooled over models; arcface, "
                                   "adaface, facenet, or any model the runs recorded).")
paper_table_opt = click.option("--paper-table", default=None,
                               help="Paper table for the paper rows (1a, 1b OmniContext, 2a, 2b, 3, 5, 6); default: "
                                    "the one matching --subset / --face-model.")


@click.command("leaderboard", epilog="""\b
Examples:
  mbench leaderboard --include-paper                       # the paper's Table 1a, ranked
  mbench leaderboard runs/uno runs/dreamo --subset p2 --include-paper --format markdown
  mbench leaderboard runs/* --format latex --out table.tex
  mbench leaderboard hf://alice/uno-multiid hf://bob/mine-multiid   # runs pushed with 'mbench push'
""")
@click.argument("results", nargs=-1, type=RUN_SOURCE)
@subset_opt
@protocol_opt
@face_model_opt
@click.option("--format", "fmt", type=click.Choice(["rich", "markdown", "csv", "latex", "html"]), default="rich",
              show_default=True, help="Output format (all are exports of the same table).")
@click.option("--include-paper/--no-include-paper", default=False, show_default=True,
              help="Add the numbers reported in the paper (marked as such) next to the measured ones.")
@paper_table_opt
@allow_mixed_opt
@click.option("--provenance/--no-provenance", default=True, show_default=True,
              help="Show the n and provenance columns (--no-provenance for a paper table; CSV always keeps them).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write to this file instead of stdout.")
def leaderboard(results: tuple[str, ...], subset: str | None, protocol: str, face_model: str, fmt: str,
                include_paper: bool, paper_table: str | None, allow_mixed: bool, provenance: bool,
                out: str | None) -> None:
    """Leaderboard from results (RUN_DIR, results.json, an exported folder or hf://USER/NAME) and, optionally,
    the paper's numbers.

    Arrows come from the metric cards; best three per column are marked, only among rows that are
    comparable with each other (a row that is not is greyed, with the reason above the table); measured
    cells show value ± CI half-width; a provenance column says paper or measured, protocol, bench and
    --limit runs.
    """
    from multiid_bench.leaderboard.render import print_rich, render
    from multiid_bench.leaderboard.store import combined_frame
    from multiid_bench.leaderboard.tables import build_leaderboard

    df = combined_frame(_runs(results), include_paper=include_paper)
    table = build_leaderboard(df, subset=subset, protocol=protocol, face_model=face_model, paper_table=paper_table,
                              allow_mixed=allow_mixed)
    if out is not None or fmt != "rich":
        text = render(table, fmt, provenance=provenance, width=_console().width)
        if out is not None:
            Path(out).write_text(text, encoding="utf-8")
            click.echo(f"wrote {out}")
            for b in table.banners:
                click.echo(f"! {b}", err=True)
        else:
            click.echo(text, nl=False)
        return
    print_rich(table, _console(), provenance=provenance)


@click.command("plot-tradeoff", epilog="""\b
Examples:
  mbench plot-tradeoff --out fig5                          # the paper's points: fig5.png, .svg, .csv
  mbench plot-tradeoff runs/mymodel --subset p2 --face-model arcface --out plots/p2.pdf
  mbench plot-tradeoff runs/a --style paper --width single --label-map names.json --out fig.pdf
""")
@click.argument("results", nargs=-1, type=RUN_SOURCE)
@subset_opt
@protocol_opt
@face_model_opt
@click.option("--x", "x_metric", default="sim_gt", show_default=True, help="Metric id on the x axis.")
@click.option("--y", "y_metric", default=None,
              help="Metric id on the y axis. Default: copy_paste_ranked, the paper's Sim(GT)-filtered CP column "
                   "(copy_paste_ranked_fm in the per-face-model view of Table 5); copy_paste is unfiltered.")
@click.option("--include-paper/--no-include-paper", default=True, show_default=True,
              help="Plot the paper's reported points (hollow circles) next to measured ones (filled diamonds).")
@paper_table_opt
@click.option("--include-limits/--no-include-limits", default=False, show_default=True,
              help="Also plot the GT / copy-reference oracles (their copy-paste of about -1 / +1 flattens the plot).")
@click.option("--degree", type=click.IntRange(1, 5), default=2, show_default=True,
              help="Degree of the polynomial fitted over the baselines.")
@allow_mixed_opt
@click.option("--style", type=click.Choice(["default", "paper"]), default="default", show_default=True,
              help="paper: serif-compatible fonts, 300 dpi raster, no title, TrueType fonts in PDF.")
@click.option("--width", default=None,
              help="Figure width: single (3.5 in), wide (5.5 in), double (7 in) or inches. Default: 9 in "
                   "(default style), single (paper style).")
@click.option("--label-map", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Rename methods: a JSON object {\"uno\": \"UNO\"} or a CSV 'name,label' (keys: model id, "
                   "paper label or run model name).")
@click.option("--title", default=None, help="Figure title ('' for none).")
@click.option("--out", default="mbench-tradeoff", show_default=True,
              help="fig.pdf / fig.svg (vector) or fig.png writes that figure and fig.csv; without a suffix: "
                   "OUT.png, OUT.svg and OUT.csv.")
def plot_tradeoff(results: tuple[str, ...], subset: str | None, protocol: str, face_model: str, x_metric: str,
                  y_metric: str | None, include_paper: bool, paper_table: str | None, include_limits: bool, degree: int,
                  allow_mixed: bool, style: str, width: str | None, label_map: str | None, title: str | None,
                  out: str) -> None:
    """Sim(GT) vs copy-paste (y descending, as the paper's Fig. 5): one point per model, CI bars,
    fitted curve over the comparable baselines, Pareto front; writes the figure and the CSV behind it."""
    from multiid_bench.leaderboard.plot_style import figure_style, read_label_map
    from multiid_bench.leaderboard.plots import plot_tradeoff as _plot
    from multiid_bench.leaderboard.plots import tradeoff_points
    from multiid_bench.leaderboard.store import combined_frame

    figure_style(style, width)  # a bad --width fails before any work
    names = read_label_map(label_map) if label_map else None
    df = combined_frame(_runs(results), include_paper=include_paper)
    pts = tradeoff_points(df, subset=subset, face_model=face_model, protocol=protocol, x_metric=x_metric,
                          y_metric=y_metric, paper_table=paper_table, include_limits=include_limits,
                          allow_mixed=allow_mixed)
    written = _plot(pts, out, title=title, degree=degree, style=style, width=width, label_map=names)
    for b in pts.attrs.get("banners", []) + pts.attrs.get("notes", []):  # notes include points left off the axes
        click.echo(f"! {b}", err=True)
    for p in written:
        click.echo(f"wrote {p}")


@click.command("report", epilog="""\b
Examples:
  mbench report runs/mymodel --out report.html
  mbench report runs/uno runs/mymodel --out cmp.html     # side by side: paired CIs + per-case gallery
Open cmp.html#sort=Δcopy_paste.arcface@1:desc to start sorted by B − A copy-paste.
""")
@click.argument("run_dirs", nargs=-1, required=True, type=RUN_SOURCE)
@click.option("--out", default="report.html", show_default=True, type=click.Path(dir_okay=False),
              help="HTML file to write (self-contained: images and plot embedded).")
@click.option("--include-paper/--no-include-paper", default=True, show_default=True,
              help="Show the paper's matching table and points for context (marked as reported in the paper).")
@click.option("--thumb", type=click.IntRange(64, 1024), default=224, show_default=True,
              help="Longest side of the embedded thumbnails, in pixels.")
@click.option("--max-cases", type=click.IntRange(1, None), default=None, help="Gallery: first N cases only.")
@click.option("--protocol", "only_protocol", type=PROTOCOLS, default=None,
              help="Side by side: the protocol compared and shown per case (default: both, headlines must match).")
@allow_mixed_opt
def report(run_dirs: tuple[str, ...], out: str, include_paper: bool, thumb: int, max_cases: int | None,
           only_protocol: str | None, allow_mixed: bool) -> None:
    """One self-contained HTML report of a run (summary tables, plot, sortable per-case gallery), or of two
    or more runs side by side (paired comparison against the first, one gallery row per case with every
    run's image, sortable by any metric or per-case difference)."""
    from multiid_bench.leaderboard.hub import resolve_run_source

    if len(run_dirs) == 1:
        from multiid_bench.leaderboard.report import build_report

        path = build_report(resolve_run_source(run_dirs[0]), out, include_paper=include_paper, thumb=thumb,
                            max_cases=max_cases)
    else:
        from multiid_bench.leaderboard.report_pair import build_pair_report

        path = build_pair_report([_load(r) for r in run_dirs], out, protocol=only_protocol,
                                 allow_mixed=allow_mixed, thumb=thumb, max_cases=max_cases)
    click.echo(f"wrote {path}")


@click.command("compare", epilog="""\b
Exit codes: 0 all metrics within tolerance, 1 a metric moved past its tolerance
(or disappeared), 2 the runs are not comparable (bench manifest, protocol,
metric versions, profile or case set differ).
With both runs' per-case rows, each delta shows a paired bootstrap 95% CI of
new - old over the shared cases; --ci-gate fails a move past tolerance only
when that CI excludes 0.
Example:
  mbench compare main/results.json pr/results.json --tolerance tol.toml
  mbench compare runs/main runs/pr --ci-gate
  mbench compare runs/a runs/b --protocol strict   # headlines differ: compare strict numbers only
""")
@click.argument("old", type=RUN_SOURCE)
@click.argument("new", type=RUN_SOURCE)
@click.option("--tolerance", "--tolerance-file", "tolerance", type=click.Path(dir_okay=False), default=None,
              help="Tolerance TOML (default: the packaged leaderboard/data/tolerances.toml).")
@click.option("--only-changed/--all-rows", default=False, show_default=True, help="Hide metrics within tolerance.")
@click.option("--paired-ci/--no-paired-ci", default=True, show_default=True,
              help="Paired bootstrap 95% CI of new - old over the cases both runs scored (needs cases.jsonl).")
@click.option("--ci-gate", is_flag=True, default=False,
              help="A move past tolerance fails only when its paired CI excludes 0 (metrics without a CI: "
                   "tolerance alone).")
@click.option("--bootstrap-resamples", type=click.IntRange(100, None), default=2000, show_default=True,
              help="Resamples of the paired bootstrap.")
@click.option("--protocol", "only_protocol", type=PROTOCOLS, default=None,
              help="Compare only this protocol's numbers (every results.json holds both), so runs with different "
                   "headline protocols compare. Default: both protocols, and the headlines must match.")
@allow_mixed_opt
@click.option("--json", "as_json", is_flag=True, default=False, help="Machine-readable output.")
def compare(old: str, new: str, tolerance: str | None, only_changed: bool, paired_ci: bool, ci_gate: bool,
            bootstrap_resamples: int, only_protocol: str | None, allow_mixed: bool, as_json: bool) -> None:
    """Compare two runs metric by metric; a CI regression check."""
    from multiid_bench.leaderboard.compare import compare_runs, comparison_table, load_tolerances

    comp = compare_runs(_load(old), _load(new), load_tolerances(tolerance), paired=paired_ci or ci_gate,
                        ci_gate=ci_gate, allow_mixed=allow_mixed, n_resamples=bootstrap_resamples,
                        protocol=only_protocol)
    if as_json:
        def delta(d: Any) -> dict[str, Any]:
            out = {k: v for k, v in d.__dict__.items() if k != "paired"}
            p = d.paired
            out["paired_ci"] = None if p is None else {
                "n": p.n, "mean_diff": None if p.mean != p.mean else p.mean,
                "lo": None if p.lo != p.lo else p.lo, "hi": None if p.hi != p.hi else p.hi, "note": p.note}
            return {**out, "delta": d.delta}

        click.echo(json.dumps({
            "old": comp.old, "new": comp.new, "tolerances": comp.tolerances, "exit_code": comp.exit_code,
            "ci_gate": ci_gate, "warnings": comp.warnings, "deltas": [delta(d) for d in comp.deltas],
        }, indent=2))
    else:
        console = _console()
        for name, path in (("old", comp.old), ("new", comp.new), ("tolerances", comp.tolerances)):
            console.print(f"{name}: {path}", markup=False, highlight=False)
        console.print(comparison_table(comp, only_changed=only_changed, width=console.width))
        for w in comp.warnings:
            console.print(f"warning: {w}", markup=False, highlight=False)
        n_fail = len(comp.failed)
        console.print(f"{n_fail} metric(s) past tolerance" if n_fail else "all metrics within tolerance",
                      style="bold red" if n_fail else "bold green")
    if comp.exit_code:
        # sys.exit via the shared helper: a click Exit would be swallowed by main()'s non-standalone mode
        from multiid_bench.cli._errors import exit_with

        exit_with(comp.exit_code)


@click.command("correlate", epilog="""\b
HUMAN is a CSV (columns: case_id, score (or rank, or --human-column), optional model and dimension) or a
study folder made by 'mbench study create' (its saved ratings; the runs default to the study's runs).
Examples:
  mbench correlate study.csv runs/a runs/b --metric copy_paste.arcface --dimension copy_paste --within-case-ranks
  mbench correlate study1 --metric copy_paste.arcface --within-case-ranks     # = a row of 'mbench study results'
""")
@click.argument("human_csv", metavar="HUMAN", type=click.Path(exists=True))
@click.argument("run_dirs", nargs=-1, type=click.Path(exists=True))
@click.option("--metric", default="copy_paste.average", show_default=True,
              help="Per-case metric key (copy_paste.arcface, sim_gt.average = mean over face models, clip_t ...).")
@click.option("--dimension", default=None,
              help="Keep only HUMAN.csv rows with this 'dimension'; for a study, the criterion (id_sim, copy_paste, "
                   "prompt, aesthetics; default: the one the metric measures).")
@click.option("--human-column", default=None, help="Column with the human value (default: score or rank).")
@click.option("--within-case-ranks/--raw-values", default=False, show_default=True,
              help="Rank models within each case on both sides first (the paper's machine vs human ranking).")
@click.option("--json", "as_json", is_flag=True, default=False, help="Machine-readable output.")
def correlate(human_csv: str, run_dirs: tuple[str, ...], metric: str, dimension: str | None,
              human_column: str | None, within_case_ranks: bool, as_json: bool) -> None:
    """Pearson, Spearman and Kendall (with p-values) between human judgements and a metric."""
    from multiid_bench.leaderboard.correlate import correlate as _correlate
    from multiid_bench.leaderboard.correlate import read_human_csv
    from multiid_bench.study.db import DB_NAME

    human_path = Path(human_csv)
    if (human_path.is_dir() and (human_path / DB_NAME).is_file()) or human_path.suffix == ".sqlite":
        from multiid_bench.study.criteria import CRITERION_IDS, MACHINE_METRIC
        from multiid_bench.study.results import human_rows, load_ratings, study_runs

        if human_column is not None:
            raise click.UsageError("--human-column applies to a CSV; a study's value is its mean stars")
        base = metric.split(".")[0]
        criterion = dimension or next((c for c, m in MACHINE_METRIC.items() if m == base), None)
        if criterion not in CRITERION_IDS:
            raise click.UsageError(f"which criterion does {metric!r} measure? pass --dimension, one of "
                                   f"{', '.join(CRITERION_IDS)}")
        human = human_rows(load_ratings(human_csv), criterion)
        runs, notes = study_runs(human_csv) if not run_dirs else (_runs(run_dirs), [])
        for note in notes:
            click.echo(f"note: {note}", err=True)
        click.echo(f"study {human_csv}: criterion {criterion}, human value = mean stars over raters per (case, "
                   "method), 5 = better; a lower-is-better metric is negated so agreement reads positive", err=True)
        res = _correlate(human, runs, metric, within_case_ranks=within_case_ranks, orient=True)
    else:
        if not run_dirs:
            raise click.UsageError("give the run folders whose metrics the CSV's ratings are correlated with")
        human = read_human_csv(human_csv, human_column=human_column, dimension=dimension)
        res = _correlate(human, _runs(run_dirs), metric, within_case_ranks=within_case_ranks)
    if as_json:
        click.echo(json.dumps({"metric": res.metric, "n": res.n, "dropped": res.dropped, "ranks": res.ranks,
                               "oriented": res.oriented,
                               "stats": res.stats, "paper_table7": {"dimension": res.paper_dimension, **res.paper}}, indent=2))
        return
    from rich.table import Table

    t = Table(title=f"{metric} vs human ({'within-case ranks' if res.ranks else 'raw values'}), n={res.n}, "
                    f"dropped={res.dropped}")
    for col in ("statistic", "value", "p-value", f"paper Table 7 ({res.paper_dimension or 'n/a'})"):
        t.add_column(col)
    for name, (v, p) in res.stats.items():
        ref = res.paper.get(name)
        t.add_row(name, f"{v:.4f}", f"{p:.3g}", "—" if ref is None else f"{ref[0]:.4f} (p={ref[1]:.3g}), reported in the paper")
    _console().print(t)
