"""``mbench export`` and ``mbench push``: a run folder as a Hugging Face dataset (folder or Hub repo).

Thin commands over :mod:`multiid_bench.leaderboard.export` and :mod:`multiid_bench.leaderboard.hub`;
``datasets`` and ``huggingface_hub`` are imported only when a command runs.
"""
from __future__ import annotations

import click

__all__ = ["export", "push"]

with_images_opt = click.option("--with-images", is_flag=True, default=False,
                               help="Add each case's generated image to the parquet rows (an Image column).")


@click.command("export", epilog="""\b
Example:
  mbench export runs/mymodel --out hub/mymodel --with-images
  python -c "import datasets; print(datasets.load_dataset('hub/mymodel'))"
  mbench leaderboard hub/mymodel runs/other
""")
@click.argument("run_dir", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder to write (empty or new).")
@with_images_opt
@click.option("--overwrite", is_flag=True, default=False, help="Replace mbench's files in an existing --out.")
def export(run_dir: str, out: str, with_images: bool, overwrite: bool) -> None:
    """Write a run as a Hugging Face dataset folder: parquet per protocol, results.json, run.json, cases.jsonl
    and a dataset card (README.md with YAML). datasets.load_dataset(OUT) and every mbench reader load it."""
    from multiid_bench.leaderboard.export import export_run

    res = export_run(run_dir, out, with_images=with_images, overwrite=overwrite)
    click.echo(f"wrote {res.out}: {res.n_rows} case rows, configs {', '.join(res.configs)}"
               + (f", {res.n_images} images" if with_images else ""))
    if res.missing_images:
        click.echo(f"! {len(res.missing_images)} case(s) without a generated image on disk (null image cell): "
                   + ", ".join(res.missing_images[:10]), err=True)


@click.command("push", epilog="""\b
Token: the usual Hugging Face login ('hf auth login') or $HF_TOKEN; never written anywhere.
Exit 3 when offline, without a token, or when the Hub cannot be reached.
Example:
  mbench push runs/mymodel --repo alice/mymodel-multiid --private
  mbench leaderboard hf://alice/mymodel-multiid hf://bob/uno-multiid
""")
@click.argument("run_dir", type=click.Path(exists=True))
@click.option("--repo", required=True, help="Hub dataset repo id USER/NAME (created when absent).")
@click.option("--private", is_flag=True, default=False, help="Create the repo private.")
@with_images_opt
def push(run_dir: str, repo: str, private: bool, with_images: bool) -> None:
    """Export a run (as 'mbench export') and upload it as a Hub dataset repo."""
    from multiid_bench.leaderboard.hub import push_run

    res = push_run(run_dir, repo, private=private, with_images=with_images)
    click.echo(f"pushed {len(res.files)} files to {res.url}{' (private)' if private else ''}")
