"""``mbench`` entry point. It only assembles: each command lives in its own module, imported on use.

Exit codes: 0 ok, 1 a regression/check failed, 2 usage error, 3 missing weights or data,
4 partial results (some cases failed; results are written and marked), 5 nothing was evaluated, 6 I/O fault
(disk full, file too large, read-only output), 7 the VLM judge cannot be reached, 130 interrupted (Ctrl-C,
SIGTERM), 141 stdout closed (``| head``).
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from multiid_bench._version import __version__

# name -> ("module:attr", one-line help). Listing commands imports none of their modules.
COMMANDS: dict[str, tuple[str, str]] = {
    "evaluate": ("multiid_bench.cli.evaluate:evaluate", "Generate with a model, then score it (the main job)."),
    "score": ("multiid_bench.cli.evaluate:score", "Score images made elsewhere against a bench."),
    "generate": ("multiid_bench.cli.generate:generate", "Generate images for a bench with a model adapter."),
    "faces": ("multiid_bench.cli.faces:faces", "Show detected faces, landmarks and similarities for images."),
    "weights": ("multiid_bench.cli.weights:weights", "List, download, verify and locate model weights."),
    "doctor": ("multiid_bench.cli.weights:doctor", "Check dependencies, devices, weights and write access."),
    "ls": ("multiid_bench.cli.ls:ls", "List models, metrics, profiles or benches."),
    "models": ("multiid_bench.cli.ls:models", "List model adapters (same as 'mbench ls models')."),
    "setup-env": ("multiid_bench.cli.setup_env:setup_env", "Build a worker adapter's pinned environment."),
    "leaderboard": ("multiid_bench.cli.leaderboard:leaderboard", "Leaderboard tables from results and paper data."),
    "plot-tradeoff": ("multiid_bench.cli.leaderboard:plot_tradeoff", "Sim(GT) vs copy-paste trade-off plot (Fig. 5)."),
    "report": ("multiid_bench.cli.leaderboard:report", "Self-contained HTML report of one run, or runs side by side."),
    "compare": ("multiid_bench.cli.leaderboard:compare", "Compare two runs; exit 1 past tolerance (CI check)."),
    "export": ("multiid_bench.cli.share:export", "Write a run as a Hugging Face dataset folder (parquet + card)."),
    "push": ("multiid_bench.cli.share:push", "Export a run and upload it as a Hugging Face Hub dataset."),
    "correlate": ("multiid_bench.cli.leaderboard:correlate", "Correlate metrics with human ratings."),
    "study": ("multiid_bench.cli.study:study", "User study: create, invite raters, serve the page, Fig. 8 + Table 7."),
    "train": ("multiid_bench.cli.train:train", "Train the WithAnyone reference model from a config."),
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported only when invoked (or their help is shown)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target, _ = COMMANDS[cmd_name]
        module_name, attr = target.split(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and name not in COMMANDS and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            ctx.fail(f"unknown command {name!r}.{hint} Run 'mbench --help' for the list.")
        return super().resolve_command(ctx, args)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mbench")
def cli() -> None:
    """MultiID-Bench: does a model keep a person's identity without copy-pasting the reference?

    \b
    Quick start (offline, no downloads):
      mbench evaluate --model ground-truth --bench demo --profile offline
    \b
    Exit codes: 0 ok, 1 check failed, 2 usage, 3 missing weights/data, 4 partial results, 5 nothing evaluated,
    6 I/O fault (disk full, read-only output), 7 VLM judge unreachable, 130 interrupted.
    Set MBENCH_DEBUG=1 for full tracebacks.
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the group and map library errors to exit codes in one place."""
    from multiid_bench.cli._errors import finish_output, install_process_handlers, run_with_error_mapping

    install_process_handlers()
    code = run_with_error_mapping(cli, argv, debug=os.environ.get("MBENCH_DEBUG") == "1")
    sys.exit(finish_output(code))


if __name__ == "__main__":  # pragma: no cover
    main()
