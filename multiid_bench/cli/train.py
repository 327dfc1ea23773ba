"""``mbench train``: train the WithAnyone reference model from a phase config, and build its reference bank.

Thin layer over ``multiid_bench.reference_model.train`` (the loop) and ``.bank`` (the negative pool); torch,
diffusers and accelerate are imported only when a command runs.
"""
from __future__ import annotations

from pathlib import Path

import click

__all__ = ["train"]

_EXAMPLES = """
\b
Examples:
  mbench train build-bank --ref-dir data/MultiID-2M/ref --out data/MultiID-2M/reference_bank.safetensors
  mbench train --config reference_model/configs/phase1.toml
  accelerate launch --num_processes 8 -m multiid_bench.cli.main train --config phase3.toml
  mbench train --config phase1.toml --max-steps 100 --output-dir runs/smoke     (short trial run)
  mbench train merge --arc runs/withanyone/phase4/final/adapter.safetensors \\
      --sig runs/withanyone/phase4-siglip/final/adapter.safetensors --out withanyone-ours.safetensors
\b
A rerun with the same output folder resumes from its latest checkpoint (run.resume = "auto").
Phase configs: reference_model/configs/phase1.toml ... phase4.toml (paper Sec. 5.2, App. F.1); SigLIP-branch
runs: phase1_siglip.toml ... phase4_siglip.toml; FSDP: --config_file reference_model/configs/accelerate/fsdp.yaml.
"""


@click.group(invoke_without_command=True, epilog=_EXAMPLES)
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Training config (TOML with [run] [optim] [loss] [model] [data]).")
@click.option("--max-steps", type=int, default=None, help="Override run.max_steps.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Override run.output_dir (checkpoints, metrics.jsonl, final adapter).")
@click.option("--resume", default=None, help="Override run.resume: auto, none, or a checkpoint folder.")
@click.pass_context
def train(ctx: click.Context, config_path: Path | None, max_steps: int | None, output_dir: Path | None,
          resume: str | None) -> None:
    """Train the WithAnyone identity adapter (losses, phases and data as in the paper)."""
    if ctx.invoked_subcommand is not None:
        return
    if config_path is None:
        raise click.UsageError("give --config FILE (e.g. reference_model/configs/phase1.toml) or a subcommand")
    from multiid_bench.reference_model.train_config import load_config

    run: dict[str, object] = {}
    if max_steps is not None:
        run["max_steps"] = max_steps
    if output_dir is not None:
        run["output_dir"] = str(output_dir)
    if resume is not None:
        run["resume"] = resume
    cfg = load_config(config_path, {"run": run} if run else None)
    from multiid_bench.weights.requirements import preflight_train

    preflight_train(cfg)  # every model file and data path, checked before anything loads (exit 3)
    from multiid_bench.reference_model.train import train as run_training

    result = run_training(cfg)
    click.echo(f"trained to step {result.step} in {result.output_dir}"
               + (f" (resumed from {result.resumed_from})" if result.resumed_from else ""))
    if result.counts:
        click.echo("skipped / flagged: " + ", ".join(f"{k}={v}" for k, v in sorted(result.counts.items())))


@train.command("build-bank")
@click.option("--ref-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Official reference folder REF_DIR/<name>/<stem>.{jpg,json,npy}.")
@click.option("--data", "data_paths", multiple=True, type=click.Path(path_type=Path),
              help="Also take identified faces from these training records (repeatable).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output safetensors file.")
@click.option("--max-per-identity", type=int, default=200, show_default=True,
              help="Embeddings kept per identity (released: 200).")
@click.option("--seed", type=int, default=0, show_default=True)
def build_bank(ref_dir: Path | None, data_paths: tuple[Path, ...], out: Path, max_per_identity: int,
               seed: int) -> None:
    """Build the reference bank (InfoNCE negative pool + paired references) as safetensors."""
    if ref_dir is None and not data_paths:
        raise click.UsageError("give --ref-dir and/or --data")
    from multiid_bench.reference_model.bank import build_reference_bank

    bank = build_reference_bank(ref_dir=ref_dir, data_paths=data_paths, max_per_identity=max_per_identity, seed=seed)
    path = bank.save(out)
    click.echo(f"wrote {path}: {len(bank.names)} identities, {len(bank)} embeddings")


@train.command("merge")
@click.option("--arc", "arc_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="ArcFace run: adapter.safetensors (ours) or ipa.safetensors (released trainer).")
@click.option("--sig", "sig_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="SigLIP run (model.branch = 'sig'): adapter.safetensors or the released ipa.safetensors.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Merged adapter (the layout of the released withanyone.safetensors).")
def merge(arc_path: Path, sig_path: Path, out: Path) -> None:
    """Merge separately trained ArcFace and SigLIP runs into one inference adapter (spec §4.6)."""
    from multiid_bench.reference_model.merge import merge_adapters

    report = merge_adapters(arc_path, sig_path, out)
    click.echo(f"wrote {report.out}: {report.arc_tensors} ArcFace + {report.sig_tensors} SigLIP tensors"
               + (f"; dropped {len(report.dropped)} (dead or the SigLIP run's frozen ArcFace branch)"
                  if report.dropped else ""))
