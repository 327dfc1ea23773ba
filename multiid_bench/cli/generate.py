"""``mbench generate``: make a bench's images with one model adapter (resumable, shardable, atomic).

The output folder is what ``mbench score --images DIR`` reads (see ``multiid_bench.adapters.generation``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _device(device: str, integration: str) -> str:
    if device != "auto":
        return device
    if integration in ("builtin", "api"):
        return "cpu"
    import os

    import torch

    if not torch.cuda.is_available():
        return "cpu"
    local_rank = os.environ.get("LOCAL_RANK")  # torchrun / accelerate: one GPU per process
    return f"cuda:{int(local_rank) % torch.cuda.device_count()}" if local_rank else "cuda"


@click.command(epilog=_EXAMPLES)
@click.option("--model", required=True, help="Adapter name (see 'mbench ls models').")
@click.option("-S", "--setting", "settings", multiple=True,
              help="Adapter setting key=value (repeatable), e.g. -S num_steps=28.")
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
def generate(model: str, settings: tuple[str, ...], bench: str, subset: str | None, limit: int | None,
             out_dir: Path | None, shard: str | None, seed: int, device: str, offline: bool | None,
             cache_dir: str | None, retry_failed: bool, as_json: bool) -> None:
    """Generate images for a bench with a model adapter."""
    import json
    import os

    from rich.console import Console

    from multiid_bench.adapters import adapter_class, freeze, get_adapter
    from multiid_bench.adapters.generation import generate_bench
    from multiid_bench.data.loaders import load_bench
    from multiid_bench.runner.shard import parse_shard, resolve_shard

    if offline:
        os.environ["MBENCH_OFFLINE"] = "1"
        os.environ["HF_HUB_OFFLINE"] = "1"
    freeze()
    cls = adapter_class(model)
    adapter = get_adapter(model, **_parse_settings(settings))
    the_shard = resolve_shard(parse_shard(shard) if shard else None)
    subsets = tuple(s.strip() for s in subset.split(",") if s.strip()) if subset else None
    loaded = load_bench(bench, cache_dir=cache_dir, offline=offline)
    out = out_dir or Path("mbench-runs") / cls.name
    console = Console(stderr=True)
    with _Progress(console) as progress:
        summary = generate_bench(adapter, loaded, out, global_seed=seed, shard=the_shard, subsets=subsets,
                                 limit=limit, retry_failed=retry_failed,
                                 device=_device(device, cls.capabilities.integration),
                                 on_plan=progress.plan, on_result=progress.result)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), indent=2))
    else:
        console.print(f"{cls.name}: {summary.ok} generated, {summary.skipped_done} already done, "
                      f"{summary.not_applicable} not applicable, {summary.failed} failed "
                      f"(shard {the_shard}, {summary.planned} cases) -> {out}")
        for case_id, reason in summary.failures[:5]:
            console.print(f"  [red]failed[/] {case_id}: {reason}")
    if summary.failed:
        raise click.exceptions.Exit(4)  # partial: rerun with --retry-failed to try those cases again


class _Progress:
    """Rich progress bar over the cases this shard generates (silent when stderr is not a terminal)."""

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(),
                                 console=console, disable=not console.is_terminal)
        self.task: Any = None
        self.failed = 0

    def __enter__(self) -> "_Progress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def plan(self, total: int, done: int) -> None:
        label = "generating" + (f" (resumed: {done} done)" if done else "")
        self.task = self.progress.add_task(label, total=total, failed=0)

    def result(self, case: Any, result: Any) -> None:
        if self.task is None:
            return
        self.failed += result is not None and result.status == "failed"
        self.progress.update(self.task, advance=1, failed=self.failed)
