"""``mbench evaluate`` (generate with a model, then score) and ``mbench score`` (images made elsewhere).

Both are thin layers over :func:`multiid_bench.api.evaluate` / :func:`~multiid_bench.api.score` (device,
offline switch, adapter wiring and progress live there) and print the summary table that the runner also
writes to ``summary.md`` / ``summary.csv``.
Exit codes: 0 ok, 2 usage, 3 weights or data missing (checked before any model loads), 4 some cases
failed (results are still written, and say which cases and why), 5 nothing was evaluated (every case not
applicable or none scored), 7 the VLM judge cannot be reached. A case scored with missing faces is a model
outcome, not a failure.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from multiid_bench.cli._common import RUN_OPTIONS, complete_adapter_names, run_options
from multiid_bench.errors import EXIT_NOTHING_EVALUATED
from multiid_bench.cli._common import parse_settings as _parse_settings

__all__ = ["evaluate", "score"]

_EVALUATE_EXAMPLES = """
\b
Examples:
  mbench evaluate --model copy-reference --bench demo --profile offline --protocol strict
  mbench evaluate --model withanyone --bench WithAnyone/MultiID-Bench --subset p2,p3 --device cuda
  mbench evaluate --model uno --shard 0/4 --out runs/uno      # one of four jobs; merged automatically
  mbench evaluate --model flux-kontext -S steps=28 --device cuda   # -S steps: any diffusion model's step count
  torchrun --nproc-per-node 8 -m multiid_bench.cli.main evaluate --model uno --out runs/uno
  mbench evaluate --model omnigen2 --bench omnicontext --subset paper --device cuda   # Table 1b, local Qwen2.5-VL judge
  mbench evaluate --model omnigen2 --bench omnicontext --judge http --judge-url http://127.0.0.1:8000/v1 \\
      --judge-model Qwen/Qwen2.5-VL-7B-Instruct                                    # a vLLM / SGLang judge
"""

_SCORE_EXAMPLES = """
\b
Examples:
  mbench score --images outputs/withanyone --bench WithAnyone/MultiID-Bench
  mbench score --images official_eval_dir --bench demo --profile offline --layout official
  mbench score --images results/MyModel/fullset --bench omnicontext --judge transformers   # OmniContext's layout
"""

# The VLM judge (OmniContext PF / SC / Overall, 0-10; docs/omnicontext.md): evaluate and score only.
_JUDGE_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--judge", "judge_backend"), dict(type=click.Choice(["none", "transformers", "http"]), default=None,
        help="VLM judge for OmniContext PF/SC/Overall: a local Qwen2.5-VL (transformers) or an OpenAI-compatible "
             "server (vLLM, SGLang, OpenAI). Default: transformers with --bench omnicontext, else none.")),
    (("--judge-prompts",), dict(type=click.Choice(["omnicontext", "omnicontext-scene-pf", "face-identity"]),
        default=None,
        help="Judge prompts: OmniContext's as its script sends them; with the scene PF rule; or SC = the paper's "
             "face-identity prompt (appendix I). Default: face-identity with --subset paper (the paper's Table 1b), "
             "else omnicontext.")),
    (("--judge-weights",), dict(default="qwen2.5-vl-7b-instruct", show_default=True,
        help="Local judge: weights id (manifest judges.toml, pinned Hub commit).")),
    (("--judge-model-dir",), dict(type=click.Path(file_okay=False), default=None,
        help="Local judge: a save_pretrained folder (model + processor) instead of --judge-weights.")),
    (("--judge-url",), dict(default=None, help="HTTP judge: base URL, e.g. http://127.0.0.1:8000/v1.")),
    (("--judge-model",), dict(default=None, help="HTTP judge: served model name, e.g. Qwen/Qwen2.5-VL-7B-Instruct.")),
    (("--judge-revision",), dict(default=None,
        help="HTTP judge: revision of the served weights (part of the judge id and cache key).")),
    (("--judge-api-key-env",), dict(default="OPENAI_API_KEY", show_default=True,
        help="HTTP judge: environment variable holding the API key (never pass a key itself).")),
    (("--judge-batch-size",), dict(type=int, default=4, show_default=True, help="Local judge: requests per generate call.")),
    (("--judge-max-attempts",), dict(type=int, default=3, show_default=True,
        help="Asks per prompt when an answer is unusable (then a failure row, never 0).")),
)


def _judge_options(fn: Any) -> Any:
    for decls, kw in reversed(_JUDGE_OPTIONS):
        fn = click.option(*decls, **kw)(fn)
    return fn


# Experiment trackers (optional extras; leaderboard/trackers.py): the finished run is logged to each.
_log_to_option = click.option(
    "--log-to", "log_to", multiple=True, type=click.Choice(["tensorboard", "wandb", "mlflow"]),
    help="Log the finished run (every metric of results.json, the per-case table, the trade-off plot, a few images) "
         "to a tracker; repeatable. TensorBoard: RUN/tensorboard; W&B and MLflow: their usual environment "
         "(WANDB_MODE, MLFLOW_TRACKING_URI). Needs pip install 'multiid-bench[tensorboard|wandb|mlflow]'.")


def _check_log_to(log_to: tuple[str, ...]) -> None:
    """A missing tracker package fails before the run starts (exit 3), not after hours of scoring."""
    if log_to:
        from multiid_bench.leaderboard.trackers import check_trackers

        check_trackers(log_to)


def _log(run: Any, log_to: tuple[str, ...]) -> None:
    if not log_to:
        return
    if run.summary is None:
        click.echo(f"not logged to {', '.join(log_to)}: results.json is not written yet (other shards running); "
                   "the process that finishes the run logs it", err=True)
        return
    from multiid_bench.leaderboard.trackers import log_run

    for logged in log_run(run.path, log_to):
        click.echo(f"logged to {logged.tracker}: {logged.where} ({logged.scalars} metrics, {logged.skipped_null} "
                   f"null not logged, {logged.images} images, {logged.table_rows} case rows)", err=True)


def _judge_settings(opts: dict[str, Any]) -> dict[str, Any] | None:
    """Pop the ``--judge*`` options from ``opts`` -> judge settings (None = no judge; OmniContext gets one)."""
    j = {k: opts.pop(k) for k in [k for k in opts if k.startswith("judge_")]}
    kind = j.get("judge_backend")
    if kind is None:
        from multiid_bench.data.omnicontext import is_omnicontext_spec

        kind = "transformers" if is_omnicontext_spec(str(opts.get("bench"))) else "none"
    if kind == "none":
        return None
    from multiid_bench.judge.settings import judge_settings

    return judge_settings(backend=kind, prompts=j["judge_prompts"], weights=j["judge_weights"],
                          model_dir=j["judge_model_dir"], url=j["judge_url"], model=j["judge_model"],
                          revision=j["judge_revision"], api_key_env=j["judge_api_key_env"],
                          batch_size=j["judge_batch_size"], max_attempts=j["judge_max_attempts"])


_JSON_OPTION = click.option("--json", "as_json", is_flag=True, default=False,
                            help="Print the headline numbers as JSON on stdout (the table goes to stderr).")


def _stdout_for(as_json: bool) -> Any:
    """With ``--json`` stdout carries the JSON document only: whatever the run prints on stdout (e.g. the
    "everything was resumed" notice) goes to stderr instead."""
    import contextlib
    import sys

    return contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()


def _finish(run: Any, as_json: bool = False, log_to: tuple[str, ...] = ()) -> None:
    """Print the summary table (or the shard's note), log to the trackers (``log_to``), and exit with the
    run's code; ``as_json``: the headline
    (:meth:`~multiid_bench.api.Run.headline`) as one JSON document on stdout, everything else on stderr."""
    if as_json:
        import json

        click.echo(json.dumps(run.headline() if run.summary is not None else
                              {"complete": False, "rows_written": run.rows_written, "folder": str(run.path)}))
    if run.summary is None:
        from rich.console import Console

        Console(stderr=True).print(f"{run.rows_written} case(s) written to {run.path}; results.json is written "
                                   "when every shard has finished.")
    else:
        _print_summary(run.summary, run.path, stderr=as_json)
    with _stdout_for(as_json):
        _log(run, log_to)
    if run.exit_code == EXIT_NOTHING_EVALUATED:
        c = run.summary["counts"]
        click.echo(f"error: nothing was evaluated: none of the {c['expected']} case(s) was scored "
                   f"({c.get('not_applicable', 0)} not applicable, {c['failed']} failed). A Python function that "
                   "returns None marks its case not applicable: did it forget its 'return'?", err=True)
    if run.exit_code:
        raise click.exceptions.Exit(run.exit_code)


def _print_summary(results: dict[str, Any], out_dir: Path, stderr: bool = False) -> None:
    from rich.console import Console

    from multiid_bench.cli._common import print_table
    from multiid_bench.judge.stats import judge_table
    from multiid_bench.runner.summary import counts_line, face_rows_with_values, summary_table

    console = Console(stderr=stderr)
    header, rows = summary_table(results, results["protocol"])
    c = results["counts"]
    title = (f"{results['model']} on {results['bench']['id']} — {results['protocol']} protocol, "
             f"profile {results['profile'].get('name', '?')}")
    j_title, j_header, j_rows, j_notes = judge_table(results["metrics"][results["protocol"]])
    if j_rows:  # a judged bench (OmniContext): PF/SC/Overall per task type is the headline
        print_table(f"{results['model']} on {results['bench']['id']} — {j_title}", j_header, j_rows, console=console)
        for note in j_notes:
            console.print(f"[yellow]{note}[/]")
        rows = face_rows_with_values(rows)
    if rows:
        print_table(title, header, rows, key_columns=3, console=console)
    for name, st in results.get("scorers", {}).items():
        if st["status"] != "ok":
            console.print(f"[yellow]{name}: {st['status']}[/] ({st.get('reason')}); its metrics are null, not 0")
    console.print(counts_line(c) + ("" if results["reportable"] else " — not reportable (--limit)"))
    for reason, n in list((results.get("missing_faces") or {}).get("reasons", {}).items())[:5]:
        console.print(f"  [yellow]{n} x[/] scored with missing faces: {reason}")
    judge = results.get("judge") or {}
    if judge.get("id"):
        w = judge.get("work") or {}
        console.print(f"judge {judge['id']}, prompts {judge.get('prompt_version')}: {w.get('questions', 0)} question(s) "
                      f"sent ({w.get('requests', 0)} requests with re-asks), {w.get('cached', 0)} answered from the cache"
                      f", over {results['shards']['sessions']} session(s)")
    for reason, n in list(results.get("failures", {}).items())[:5]:
        console.print(f"  [red]{n} x[/] {reason}")
    if c.get("irregular"):
        kinds = ", ".join(f"{k} {n}" for k, n in results.get("irregularities", {}).items())
        console.print(f"[yellow]{c['irregular']} irregular bench row(s) evaluated[/] as the official conversion "
                      f"would ({kinds}); see 'irregular' in cases*.jsonl")
    console.print(f"results: {out_dir / 'results.json'}  rows: {out_dir}/cases*.jsonl  summary: {out_dir / 'summary.md'}")


@click.command(epilog=_EVALUATE_EXAMPLES)
@click.option("--model", required=True, shell_complete=complete_adapter_names, help="Adapter name (see 'mbench ls models'), e.g. ground-truth, copy-reference, uno.")
@run_options("settings", "preset", "retry_failed", *RUN_OPTIONS)
@_judge_options
@_JSON_OPTION
@_log_to_option
def evaluate(model: str, settings: tuple[str, ...], preset: str | None, as_json: bool, log_to: tuple[str, ...],
             **opts: Any) -> None:
    """Generate every case with MODEL, then score it (resumable, shardable)."""
    from multiid_bench import api
    from multiid_bench.adapters import settings_with_preset

    _check_log_to(log_to)
    judge = _judge_settings(opts)
    with _stdout_for(as_json):
        run = api.evaluate(model, settings=settings_with_preset(model, _parse_settings(settings), preset),
                           judge=judge, **opts)
    _finish(run, as_json, log_to)


@click.command(epilog=_SCORE_EXAMPLES)
@click.option("--images", "images_dir", required=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of generated images: <case id>.png, <case>/out.jpg (official) or an mbench generate folder.")
@click.option("--layout", type=click.Choice(["auto", "official", "flat", "mbench", "omnicontext"]), default="auto",
              show_default=True,
              help="How images are laid out under --images.")
@click.option("--name", default=None, help="Model name recorded in results (default: the folder name).")
@run_options(*RUN_OPTIONS)
@_judge_options
@_JSON_OPTION
@_log_to_option
def score(images_dir: Path, layout: str, name: str | None, as_json: bool, log_to: tuple[str, ...],
          **opts: Any) -> None:
    """Score images made elsewhere against a bench."""
    from multiid_bench import api

    _check_log_to(log_to)
    judge = _judge_settings(opts)
    with _stdout_for(as_json):
        run = api.score(images_dir, layout=layout, name=name, judge=judge, **opts)
    _finish(run, as_json, log_to)
