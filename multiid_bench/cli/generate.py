"""``mbench generate``: make a bench's images with one model adapter (resumable, shardable, atomic).

A thin layer over :func:`multiid_bench.api.generate`; the output folder is what ``mbench score --images DIR``
reads (the generation loop and its resume rule: :mod:`multiid_bench.runner.sources`).
"""
from __future__ import annotations

from typing import Any

import click

from multiid_bench.cli._common import parse_settings as _parse_settings
from multiid_bench.cli._common import complete_adapter_names, run_options

__all__ = ["generate"]

_EXAMPLES = """
\b
Examples:
  mbench generate --model dummy --bench demo --profile offline --out runs/dummy
  mbench generate --model uno --bench WithAnyone/MultiID-Bench --shard 0/4 --out runs/uno
  torchrun --nproc-per-node 8 -m multiid_bench.cli.main generate --model withanyone --out runs/wa
  mbench generate --model gpt4o -S quality=medium --limit 8 --out runs/gpt   (needs OPENAI_API_KEY)
\b
The model gets the references 'mbench evaluate' gives it (--ref-source, default prepared: tight face crops made
by the --profile's crop detector); score with the same --ref-source and --profile to get evaluate's numbers.
A rerun with the same --out skips cases already generated (failed ones too, unless --retry-failed).
Per-case seed = sha256("{seed}:{case id}:0") mod 2**31, recorded in generations.jsonl.
"""


@click.command(epilog=_EXAMPLES)
@click.option("--model", required=True, shell_complete=complete_adapter_names, help="Adapter name (see 'mbench ls models').")
@run_options("settings", "preset", "bench", "subsets", "limit", "out", "shard", "seed", "device", "offline", "cache_dir",
             "retry_failed", "ref_source", "profile", "overwrite")
@click.option("--json/--no-json", "as_json", default=False, show_default=True, help="Print the summary as JSON.")
def generate(model: str, settings: tuple[str, ...], preset: str | None, as_json: bool, **opts: Any) -> None:
    """Generate images for a bench with a model adapter."""
    import json

    from rich.console import Console

    from multiid_bench import api
    from multiid_bench.adapters import freeze, settings_with_preset

    freeze()
    summary = api.generate(model, settings=settings_with_preset(model, _parse_settings(settings), preset), **opts)
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
