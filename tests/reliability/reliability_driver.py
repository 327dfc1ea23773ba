"""A tiny ``mbench``-like program for the process-level tests: the real error mapping and signal handling
(``multiid_bench.cli._errors``) around a real runner on the colour-square fake world.

Run as ``python reliability_driver.py evaluate OUT CACHE [--sleep-per-row S] [--slow-cleanup S]`` or
``python reliability_driver.py print TEXT REPEAT``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runner"))

from multiid_bench.cli._errors import finish_output, install_process_handlers, run_with_error_mapping  # noqa: E402


@click.group()
def cli() -> None:
    pass


@cli.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.argument("cache", type=click.Path(path_type=Path))
@click.option("--sleep-per-row", type=float, default=0.0)
@click.option("--slow-cleanup", type=float, default=0.0)
def evaluate(out: Path, cache: Path, sleep_per_row: float, slow_cleanup: float) -> None:
    from runner_fakes import make_world, run

    world = make_world(out.parent / "bench", persons=(1, 1, 2, 2))
    try:
        outcome = run(world, "ground-truth", out, cache,
                      on_row=lambda row: (print("row", row["case_id"], flush=True), time.sleep(sleep_per_row)))
        print("complete" if outcome.complete else "incomplete")
    finally:
        if slow_cleanup:
            time.sleep(slow_cleanup)


@cli.command("print")
@click.argument("text")
@click.argument("repeat", type=int)
def print_(text: str, repeat: int) -> None:
    from rich.console import Console

    console = Console()
    for i in range(repeat):
        console.print(f"{i} {text}")


if __name__ == "__main__":
    install_process_handlers()
    sys.exit(finish_output(run_with_error_mapping(cli, sys.argv[1:], debug=False)))
