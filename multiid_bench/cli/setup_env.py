"""``mbench setup-env NAME``: build a worker adapter's environment from its pinned repository and lock file.

The library side is ``multiid_bench.adapters.environments`` (specs, plan, records) and
``multiid_bench.adapters.env_build`` (running the plan); this module only parses flags and prints.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["setup_env"]


@click.command("setup-env", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("name", required=False)
@click.option("--prefix", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the environments (default: <mbench cache>/envs). Each gets <prefix>/<env>/{repo,venv}.")
@click.option("--source", default=None,
              help="Upstream code from a local checkout, git repository or .tar.gz/.zip archive (air-gapped "
                   "machines) instead of cloning from GitHub.")
@click.option("--python", "python", default=None, help="Interpreter for the venv (default: python<version of the lock>).")
@click.option("--override", "overrides", multiple=True,
              help="Replace a locked requirement, e.g. --override torch==2.4.1+cu118 (recorded with the env).")
@click.option("--uv/--no-uv", "use_uv", default=None, help="Use uv for the venv and install (default: when on PATH).")
@click.option("--dry-run", is_flag=True, help="Print the plan (repository, commit, lock file, commands); run nothing.")
@click.option("--all", "all_", is_flag=True, help="With --dry-run: the plan of every worker adapter.")
@click.option("--json/--no-json", "as_json", default=False, show_default=True, help="Print the plan as JSON.")
def setup_env(name: str | None, prefix: Path | None, source: str | None, python: str | None,
              overrides: tuple[str, ...], use_uv: bool | None, dry_run: bool, all_: bool, as_json: bool) -> None:
    """Clone NAME's upstream repository at its pinned commit, create a venv, install the shipped lock file,
    import-check the worker, and record the environment so 'mbench generate --model NAME' uses it."""
    from multiid_bench.adapters.env_build import describe_plan, run_plan
    from multiid_bench.adapters.environments import SPECS, default_prefix, plan, spec_for

    if all_ and not dry_run:
        raise click.UsageError("--all only goes with --dry-run (build environments one by one)")
    if not name and not all_:
        raise click.UsageError(f"give an adapter name: {', '.join(sorted(SPECS))}")
    specs = [SPECS[n] for n in sorted(SPECS)] if all_ else [spec_for(name or "")]
    root = prefix or default_prefix()
    plans = [(s, plan(s, root, source=source, python=python, overrides=overrides, use_uv=use_uv)) for s in specs]
    if dry_run:
        described = [describe_plan(s, steps) for s, steps in plans]
        if as_json:
            click.echo(json.dumps(described if all_ else described[0], indent=2))
            return
        for d in described:
            click.echo(f"{d['adapter']}: {d['repository']} @ {d['commit']} (Python {d['python']})")
            if d["shares"]:
                click.echo(f"  shares the environment of {d['shares']}")
            click.echo(f"  lock: {d['lock']} (sha256 {d['lock_sha256'][:12]})")
            click.echo(f"  GPU: {d['gpu']}")
            click.echo(f"  notes: {d['notes']}")
            for i, cmd in enumerate(d["commands"], 1):
                click.echo(f"  {i}. {cmd}")
        return
    spec, steps = plans[0]
    record = run_plan(spec, steps, overrides=overrides, echo=lambda m: click.echo(m, err=True))
    if as_json:
        click.echo(json.dumps(record, indent=2))
    else:
        click.echo(f"{spec.name}: environment ready ({record['python']}); 'mbench generate --model {spec.name}' uses it.")
