"""``mbench generate``: make a bench's images with one model adapter (resumable, shardable, atomic).

A thin layer over :func:`multiid_bench.api.generate`; the output folder is what ``mbench score --images DIR``
reads (the generation loop and its resume rule: :mod:`multiid_bench.runner.sources`).
"""
from __future__ import annotations

from pathlib import Path

import click

from multiid_bench.cli._common import parse_settings as _parse_settings

__all__ = ["generate"]

_EXAMPLES = """
\b
Examples:
  mbench generate --model dummy --bench demo --out runs/dummy
  mbench generate --model uno --bench WithAnyone/MultiID-Bench --shard 0/4 --out runs/uno
  torchrun --nproc-per-node 8 -m multiid_bench.cli.main generate --model withanyone --out runs/wa
  mbench generate --model gpt4o -S quality=medium --limit 8 --out runs/gpt   (needs OPENAI_API_KEY)
\b
A rerun with the same --out skips cases already generated (failed ones too, unless --retry-failed).
Per-case seed = sha256("{seed}:{case id}:0") mod 2**31, recorded in generations.jsonl.
"""


@click.command(epilog=_EXAMPLES)
@click.option("--model", required=True, help="Adapter name (see 'mbench ls models').")
@click.option("-S", "--setting", "settings", multiple=True,
              help="Adapter setting key=value (repeatable), e.g. -S num_steps=28.")
@click.option("--preset", type=click.Choice(["paper", "upstream"]), default=None,
              help="Baseline settings: as the paper ran them (the default) or the upstream defaults (docs/adapters.md).")
@click.option("--bench", default="WithAnyone/MultiID-Bench", show_default=True,
              help="Bench: 'demo', a Hugging Face dataset id, or a path (parquet, save_to_disk, JSONL, official folder).")
@click.option("--subset", default=None, help="Comma list of subsets: p1,p2,p3 (default all).")
@click.option("--limit", type=int, default=None, help="Only the first N selected cases (smoke runs).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: mbench-runs/<model>).")
@click.option("--shard", default=None, help="Generate shard i/n of the cases (deterministic by case id); "
              "combined with RANK/WORLD_SIZE under torchrun or accelerate.")
@click.option("--seed", type=int, default=0, show_default=True, help="Global seed; per-case seeds derive from it.")
@click.option("--device", default="auto", show_default=True,
              help="cpu, cuda, cuda:1 ... (auto = cuda if available; cuda:$LOCAL_RANK under torchrun/accelerate).")
@click.option("--offline/--no-offline", default=None, help="Never download (default: MBENCH_OFFLINE / HF_HUB_OFFLINE).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Cache root for data (the demo bench, hub rows).")
@click.option("--retry-failed/--no-retry-failed", default=False, show_default=True,
              help="Regenerate cases whose earlier attempt failed (API refusals cost money: off by default).")
@click.option("--json/--no-json", "as_json", default=False, show_default=True, help="Print the summary as JSON.")
def generate(model: str, settings: tuple[str, ...], preset: str | None, bench: str, subset: str | None, limit: int | None,
             out_dir: Path | None, shard: str | None, seed: int, device: str, offline: bool | None,
             cache_dir: str | None, retry_failed: bool, as_json: bool) -> None:
    """Generate images for a bench with a model adapter."""
    import json

    from rich.console import Console

    from multiid_bench import api
    from multiid_bench.adapters import freeze, settings_with_preset

    freeze()
    summary = api.generate(model, bench=bench, out=out_dir, subsets=subset, limit=limit, shard=shard, seed=seed,
                           device=device, offline=offline, cache_dir=cache_dir,
                           settings=settings_with_preset(model, _parse_settings(settings), preset),
                           retry_failed=retry_failed)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        console = Console(stderr=True)
        console.print(f"{model}: {summary.ok} generated, {summary.skipped_done} already done, "
                      f"{summary.not_applicable} not applicable, {summary.failed} failed "
                      f"({summary.planned} cases of this shard) -> {summary.out_dir}")
        for case_id, reason in summary.failures[:5]:
            console.print(f"  [red]failed[/] {case_id}: {reason}")
    if summary.failed:
        raise click.exceptions.Exit(4)  # partial: rerun with --retry-failed to try those cases again
