"""``mbench study create | invite | serve | results``: the paper's user study (appendix H) as a tool.

Thin commands over :mod:`multiid_bench.study`; the web stack (``multiid-bench[study]``) is imported only
by ``serve``. docs/study.md walks through a study from ``create`` to Table 7.
"""
from __future__ import annotations

from pathlib import Path

import click


@click.group("study", epilog="""\b
Example:
  mbench study create runs/uno runs/dreamo runs/withanyone --out study1
  mbench study invite study1 --raters 10
  mbench study serve study1                  # http://127.0.0.1:8000/r/<token>
  mbench study results study1                # Fig. 8, agreement, Table 7 -> study1/results
""")
def study() -> None:
    """The paper's user study: blind 1-5 star ratings of several runs, Fig 8 and Table 7."""


@study.command("create")
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Study folder to create (study.sqlite + media/).")
@click.option("--per-subset", default=None,
              help="Cases per subset, e.g. p1=100,p2=100,p3=all (the paper's sampling, the default; p3 holds "
                   "the three- and four-person cases).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sampling and the result orders.")
def create(runs: tuple[str, ...], out: Path, per_subset: str | None, seed: int) -> None:
    """Pick the trials from RUN folders (made by 'mbench evaluate') and write the study."""
    from multiid_bench.study.create import create_study, parse_per_subset

    plan = create_study(runs, out, per_subset=parse_per_subset(per_subset), seed=seed)
    for note in plan.notes:
        click.echo(f"note: {note}", err=True)
    for e in plan.excluded[:20]:
        click.echo(f"left out: {e['case_id']}: {e['reason']}", err=True)
    if len(plan.excluded) > 20:
        click.echo(f"... and {len(plan.excluded) - 20} more left out (all are listed in the study's meta table)",
                   err=True)
    total = sum(plan.trials.values())
    click.echo(f"study {plan.folder}: {total} trials ({', '.join(f'{k}={v}' for k, v in plan.trials.items())}) x "
               f"{len(plan.runs)} methods, seed {seed}. Next: mbench study invite {plan.folder} --raters 10")


@study.command("invite")
@click.argument("study_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--raters", type=int, required=True, help="How many new raters to invite.")
@click.option("--name", "names", multiple=True, help="Rater name (repeat once per rater); default rater-<id>.")
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True,
              help="Where 'mbench study serve' is reachable, as the raters will type it.")
def invite(study_dir: str, raters: int, names: tuple[str, ...], base_url: str) -> None:
    """Add raters and print their invitation links (shown once: the study keeps only a hash)."""
    from multiid_bench.study.invite import invitation_url, invite_raters

    for inv in invite_raters(study_dir, raters, names=names):
        click.echo(f"{inv.name}\t{invitation_url(base_url, inv.token)}")
    click.echo("Keep these links: the study stores only a hash of each token; a lost link needs a new invitation.",
               err=True)


@study.command("serve")
@click.argument("study_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback is served with a warning.")
@click.option("--port", type=int, default=8000, show_default=True)
def serve(study_dir: str, host: str, port: int) -> None:
    """Serve the rating page to invited raters (needs pip install 'multiid-bench[study]')."""
    from multiid_bench.study.server import serve as _serve

    click.echo(f"serving {study_dir} on http://{host}:{port}/r/<token> (Ctrl-C stops; answers are saved as they "
               "are submitted)", err=True)
    _serve(study_dir, host, port, warn=lambda msg: click.echo(msg, err=True))


@study.command("results")
@click.argument("study_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for fig8.png/.pdf/.csv, agreement.csv, table7.csv, results.json (default STUDY/results).")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed of the CIs.")
def results(study_dir: str, out: Path | None, seed: int) -> None:
    """Mean ranks and stars with the bubble chart (Fig 8), inter-rater agreement, Table 7 vs the paper."""
    from rich.console import Console
    from rich.table import Table

    from multiid_bench.study.results import study_results

    res = study_results(study_dir, out, seed=seed)
    console = Console(width=200, soft_wrap=False)

    def fmt(v: object, spec: str = ".3f") -> str:
        return "—" if v is None or v != v else format(v, spec)  # type: ignore[operator]

    t = Table(title="Fig. 8: mean rank (1 = best) and mean stars per criterion, 95% bootstrap CI over trials")
    for col in ("criterion", "method", "mean rank", "rank CI", "mean stars", "stars CI", "trials", "raters"):
        t.add_column(col)
    for _, r in res.methods.iterrows():
        t.add_row(r["criterion"], r["method"], fmt(r["mean_rank"], ".2f"),
                  f"[{fmt(r['rank_ci95_lo'], '.2f')}, {fmt(r['rank_ci95_hi'], '.2f')}]", fmt(r["mean_stars"], ".2f"),
                  f"[{fmt(r['stars_ci95_lo'], '.2f')}, {fmt(r['stars_ci95_hi'], '.2f')}]", str(r["trials"]),
                  str(r["raters"]))
    console.print(t)
    a = Table(title="Inter-rater agreement")
    for col in ("criterion", "Kendall's W (mean over trials)", "W trials", "Krippendorff alpha (ordinal)", "raters",
                "trials", "answers"):
        a.add_column(col)
    for _, r in res.agreement.iterrows():
        a.add_row(r["criterion"], fmt(r["kendalls_w"]), str(r["w_trials"]), fmt(r["krippendorff_alpha_ordinal"]),
                  str(r["raters"]), str(r["trials"]), str(r["answers"]))
    console.print(a)
    t7 = Table(title="Table 7: machine vs human within-trial ranking (this study | the paper, as reported)")
    for col in ("criterion", "metric", "n", "Pearson r (p)", "Spearman rho (p)", "Kendall tau (p)", "paper"):
        t7.add_column(col)
    for r in res.table7:
        if "skipped" in r:
            t7.add_row(r["criterion"], r["metric"], "—", "—", "—", "—", f"skipped: {r['skipped']}")
            continue
        cells = [f"{r[s]:.4f} ({r[s + '_p']:.3g})" for s in ("pearson", "spearman", "kendall")]
        paper = ", ".join(f"{s} {r['paper_' + s]:.4f} ({r['paper_' + s + '_p']:.3g})"
                          for s in ("pearson", "spearman", "kendall") if r.get("paper_" + s) is not None)
        t7.add_row(r["criterion"], r["metric"], str(r["n"]), *cells, f"{r['paper_dimension']}: {paper}" if paper else "—")
    console.print(t7)
    for note in res.notes:
        click.echo(f"note: {note}", err=True)
    click.echo("wrote " + ", ".join(str(f) for f in res.files))
