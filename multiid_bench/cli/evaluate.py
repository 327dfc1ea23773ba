"""``mbench evaluate`` (generate with a model, then score) and ``mbench score`` (images made elsewhere).

Both are thin: they build a :class:`~multiid_bench.runner.RunConfig`, pick the image source, show a progress
bar, and print the summary table that the runner also writes to ``summary.md`` / ``summary.csv``.
Exit codes: 0 ok, 2 usage, 3 weights or data missing (checked before any model loads), 4 some cases
failed (results are still written, and say which cases and why).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

import click

from multiid_bench.cli._common import parse_settings as _parse_settings

__all__ = ["evaluate", "score"]

_EVALUATE_EXAMPLES = """
\b
Examples:
  mbench evaluate --model copy-reference --bench demo --profile offline --protocol strict
  mbench evaluate --model withanyone --bench WithAnyone/MultiID-Bench --subset p2,p3 --device cuda
  mbench evaluate --model uno --shard 0/4 --out runs/uno      # one of four jobs; merged automatically
  torchrun --nproc-per-node 8 -m multiid_bench.cli.main evaluate --model uno --out runs/uno
"""

_SCORE_EXAMPLES = """
\b
Examples:
  mbench score --images outputs/withanyone --bench WithAnyone/MultiID-Bench
  mbench score --images official_eval_dir --bench demo --profile offline --layout official
"""


def _common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by evaluate and score (defined once so names and help never drift)."""
    options = [
        click.option("--bench", default="WithAnyone/MultiID-Bench", show_default=True,
                     help="Bench: 'demo' (offline), a Hugging Face id, or a path (JSONL, parquet, save_to_disk, official folder)."),
        click.option("--subset", default=None, help="Comma list of subsets to run: p1,p2,p3 (default all)."),
        click.option("--limit", type=int, default=None, help="Only the first N cases (smoke test; results not reportable)."),
        click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Run folder (rows, images, results.json). Re-running resumes it."),
        click.option("--protocol", type=click.Choice(["paper", "strict"]), default="paper", show_default=True,
                     help="Headline protocol (both are always computed and written)."),
        click.option("--profile", type=click.Choice(["paper", "offline"]), default="paper", show_default=True,
                     help="Face profile: paper (ArcFace/AdaFace/FaceNet as published) or offline (MTCNN + dlib, no downloads)."),
        click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1 ... (auto = cuda if available)."),
        click.option("--batch-size", type=int, default=32, show_default=True, help="Faces (and images) per forward pass."),
        click.option("--offline/--no-offline", default=None,
                     help="Never download (default: on with --profile offline, else MBENCH_OFFLINE / HF_HUB_OFFLINE)."),
        click.option("--shard", default=None, help="Run shard i/n of the cases (deterministic by case id)."),
        click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Cache root for weights, data and embeddings."),
        click.option("--ref-source", type=click.Choice(["prepared", "raw"]), default="prepared", show_default=True,
                     help="References as tight face crops (as the paper's generator saw them) or as given by the bench."),
        click.option("--scorers/--no-scorers", default=True, show_default=True,
                     help="Also compute CLIP-I/CLIP-T/aesthetic when their weights are present."),
        click.option("--seed", type=int, default=0, show_default=True, help="Global seed; per-case seeds derive from it."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _device(device: str) -> str:
    """``auto``: CUDA when available; under torchrun/accelerate each rank takes its ``LOCAL_RANK`` GPU."""
    if device != "auto":
        return device
    import os

    import torch

    if not torch.cuda.is_available():
        return "cpu"
    local = os.environ.get("LOCAL_RANK")
    return f"cuda:{int(local) % max(torch.cuda.device_count(), 1)}" if local and local.isdigit() else "cuda"


def _config(model: str, opts: dict[str, Any]) -> Any:
    from multiid_bench.runner import RunConfig, parse_shard, resolve_shard

    shard = resolve_shard(parse_shard(opts["shard"]) if opts["shard"] else None)
    subsets = tuple(s.strip() for s in opts["subset"].split(",") if s.strip()) if opts["subset"] else None
    # The offline profile promises no downloads: optional scorers then use only weights already cached.
    offline = opts["offline"] if opts["offline"] is not None else (True if opts["profile"] == "offline" else None)
    if offline:
        # Every library in the process (ours, huggingface_hub, diffusers, transformers) stays off the network,
        # including the generator's loaders, which read these switches rather than our config.
        import os

        os.environ["MBENCH_OFFLINE"] = "1"
        os.environ["HF_HUB_OFFLINE"] = "1"
    return RunConfig(
        model=model, bench=opts["bench"], subsets=subsets, limit=opts["limit"], protocol=opts["protocol"],
        profile=opts["profile"], device=_device(opts["device"]), batch_size=opts["batch_size"],
        offline=offline, seed=opts["seed"], ref_source=opts["ref_source"], scorers=opts["scorers"],
        cache_dir=opts["cache_dir"], shard_index=shard.index, shard_count=shard.count,
        adapter_settings=opts.get("adapter_settings", {}),
    )


def _run(config: Any, out_dir: Path, source_factory: Callable[[Path], Any]) -> None:
    from rich.console import Console

    from multiid_bench.runner import run_evaluation

    console = Console(stderr=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = source_factory(out_dir)
    with _Progress(console) as progress:
        outcome = run_evaluation(config, out_dir, source, on_plan=progress.plan, on_row=progress.row)
    if outcome.results is None:
        console.print(f"shard {outcome.shard}: {outcome.rows_written} case(s) written to {out_dir}; "
                      "results.json is written when every shard has finished.")
    else:
        _print_summary(outcome.results, out_dir)
    code = outcome.exit_code
    if code:
        raise click.exceptions.Exit(code)


class _Progress:
    """A rich progress bar with cases/s and failures (silent when stderr is not a terminal)."""

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} cases/s"), TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not console.is_terminal,
        )
        self.task: Any = None
        self.failed = 0
        self.done = 0

    def __enter__(self) -> "_Progress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def plan(self, pending: int, skipped: int) -> None:
        label = "evaluating" + (f" (resumed: {skipped} done)" if skipped else "")
        self.task = self.progress.add_task(label, total=pending, rate="-", failed=0)

    def row(self, row: Any) -> None:
        if self.task is None:
            return
        self.done += 1
        self.failed += row.get("status") == "failed"
        elapsed = self.progress.tasks[self.task].elapsed or 0.0
        rate = f"{self.done / elapsed:.2f}" if elapsed > 0 else "-"
        self.progress.update(self.task, advance=1, rate=rate, failed=self.failed)


def _print_summary(results: dict[str, Any], out_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from multiid_bench.runner.summary import summary_table

    console = Console()
    header, rows = summary_table(results, results["protocol"])
    c = results["counts"]
    title = (f"{results['model']} on {results['bench']['id']} — {results['protocol']} protocol, "
             f"profile {results['profile'].get('name', '?')}")
    table = Table(title=title)
    for h in header:
        table.add_column(h)
    for r in rows:
        table.add_row(*r)
    console.print(table)
    for name, st in results.get("scorers", {}).items():
        if st["status"] != "ok":
            console.print(f"[yellow]{name}: {st['status']}[/] ({st.get('reason')}); its metrics are null, not 0")
    console.print(f"{c['evaluated']}/{c['expected']} evaluated, {c['failed']} failed, "
                  f"{c.get('not_applicable', 0)} not applicable"
                  + ("" if results["reportable"] else " — not reportable (--limit)"))
    for reason, n in list(results.get("failures", {}).items())[:5]:
        console.print(f"  [red]{n} x[/] {reason}")
    if c.get("irregular"):
        kinds = ", ".join(f"{k} {n}" for k, n in results.get("irregularities", {}).items())
        console.print(f"[yellow]{c['irregular']} irregular bench row(s) evaluated[/] as the official conversion "
                      f"would ({kinds}); see 'irregular' in cases*.jsonl")
    console.print(f"results: {out_dir / 'results.json'}  rows: {out_dir}/cases*.jsonl  summary: {out_dir / 'summary.md'}")


@click.command(epilog=_EVALUATE_EXAMPLES)
@click.option("--model", required=True, help="Adapter name (see 'mbench ls models'), e.g. ground-truth, copy-reference, uno.")
@click.option("-S", "--setting", "settings", multiple=True, help="Adapter setting key=value (repeatable), e.g. -S steps=28.")
@_common_options
def evaluate(model: str, settings: tuple[str, ...], **opts: Any) -> None:
    """Generate every case with MODEL, then score it (resumable, shardable)."""
    from multiid_bench.adapters import adapter_class, get_adapter
    from multiid_bench.runner.evaluation import default_out_dir
    from multiid_bench.runner.sources import AdapterSource

    adapter_settings = _parse_settings(settings)
    cls = adapter_class(model)
    opts["adapter_settings"] = adapter_settings
    config = _config(cls.name, opts)
    if "ref_pad_ratio" in cls.capabilities.defaults and "ref_pad_ratio" not in adapter_settings:
        adapter_settings = {**adapter_settings, "ref_pad_ratio": config.ref_pad_ratio}  # oracle = what scoring sees
    adapter = get_adapter(model, **adapter_settings)
    out_dir = opts["out_dir"] or default_out_dir(config)
    from multiid_bench.runner import Shard

    shard = Shard(config.shard_index, config.shard_count)
    _run(config, out_dir, functools.partial(_adapter_source, adapter, config.seed, shard, AdapterSource))


def _adapter_source(adapter: Any, seed: int, shard: Any, cls: Any, out_dir: Path) -> Any:
    return cls(adapter, out_dir, global_seed=seed, shard=shard)


@click.command(epilog=_SCORE_EXAMPLES)
@click.option("--images", "images_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of generated images: <case id>.png, <case>/out.jpg (official) or an mbench generate folder.")
@click.option("--layout", type=click.Choice(["auto", "official", "flat", "mbench"]), default="auto", show_default=True,
              help="How images are laid out under --images.")
@click.option("--name", default=None, help="Model name recorded in results (default: the folder name).")
@_common_options
def score(images_dir: Path, layout: str, name: str | None, **opts: Any) -> None:
    """Score images made elsewhere against a bench."""
    from multiid_bench.runner.sources import FolderSource

    config = _config(name or images_dir.resolve().name, opts)
    out_dir = opts["out_dir"] or images_dir / "mbench-score"
    _run(config, out_dir, lambda _out: FolderSource(images_dir, layout))
