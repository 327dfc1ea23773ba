"""Pieces every command shares: the run options, ``-S key=value`` settings and the one table printer."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

__all__ = ["RUN_OPTIONS", "parse_settings", "print_table", "run_options"]

_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "settings": (("-S", "--setting", "settings"), dict(multiple=True,
          help="Adapter setting key=value (repeatable), e.g. -S steps=28.")),
    "preset": (("--preset",), dict(type=click.Choice(["paper", "upstream"]), default=None,
          help="Baseline settings: as the paper ran them (the default) or the upstream defaults (docs/adapters.md).")),
    "retry_failed": (("--retry-failed/--no-retry-failed",), dict(default=False, show_default=True,
          help="Generate again cases whose earlier generation failed (API refusals cost money: off by default).")),
    "bench": (("--bench",), dict(default="WithAnyone/MultiID-Bench", show_default=True,
          help="Bench: 'demo' (offline), a Hugging Face id, or a path (JSONL, parquet, save_to_disk, official folder); "
               "'omnicontext' = OmniGen2/OmniContext (or a local copy), judged by a VLM (--judge).")),
    "subsets": (("--subset", "subsets"), dict(default=None,
          help="Comma list of subsets to run: p1,p2,p3 (default all); OmniContext: its task types (single_character, "
               "..., scene_character_object), the groups single/multiple/scene, or the preset 'paper' "
               "(= single_character, the paper's Table 1b).")),
    "limit": (("--limit",), dict(type=int, default=None,
          help="Only the first N cases (smoke test; results not reportable).")),
    "out": (("--out", "out"), dict(type=click.Path(file_okay=False, path_type=Path), default=None,
          help="Output folder (rows, images, results). Re-running resumes it.")),
    "protocol": (("--protocol",), dict(type=click.Choice(["paper", "strict"]), default="paper", show_default=True,
          help="Headline protocol (both are always computed and written).")),
    "profile": (("--profile",), dict(default="paper", show_default=True,
          shell_complete=lambda ctx, param, incomplete: [p for p in ("paper", "offline") if p.startswith(incomplete)],
          help="Face profile: paper (ArcFace/AdaFace/FaceNet as published) or offline (MTCNN + dlib, no downloads); "
               "add face-model plug-ins with +NAME (offline+myface; 'mbench ls face-models').")),
    "device": (("--device",), dict(default="auto", show_default=True,
          help="cpu, cuda, cuda:1 ... (auto = cuda if available; cuda:$LOCAL_RANK under torchrun/accelerate).")),
    "batch_size": (("--batch-size",), dict(type=int, default=32, show_default=True,
          help="Faces (and images) per forward pass.")),
    "offline": (("--offline/--no-offline",), dict(default=None,
          help="Never download (default: on with --profile offline, else MBENCH_OFFLINE / HF_HUB_OFFLINE).")),
    "shard": (("--shard",), dict(default=None,
          help="Run shard i/n of the cases (deterministic by case id; combined with RANK/WORLD_SIZE under torchrun).")),
    "cache_dir": (("--cache-dir",), dict(type=click.Path(file_okay=False), default=None,
          help="Cache root for weights, data and embeddings.")),
    "ref_source": (("--ref-source",), dict(type=click.Choice(["prepared", "raw"]), default="prepared", show_default=True,
          help="References as tight face crops (as the paper's generator saw them) or as given by the bench.")),
    "scorers": (("--scorers/--no-scorers",), dict(default=True, show_default=True,
          help="Also compute CLIP-I/CLIP-T/aesthetic when their weights are present.")),
    "paper_pixels": (("--paper-pixels",), dict(type=click.Choice(["official", "as-given"]), default="official",
          show_default=True, help="Paper protocol: score the JPEG-q75 bytes the official pipeline stored (official) or "
                                  "the files as given. Strict always scores the files (docs/footguns.md).")),
    "overwrite": (("--overwrite",), dict(is_flag=True, default=False,
          help="Start --out afresh: its old entries move into OUT/replaced-<UTC time>/ (never deleted). Without it a "
               "rerun resumes, and refuses a folder made with other settings.")),
    "seed": (("--seed",), dict(type=int, default=0, show_default=True,
          help="Global seed; per-case seeds derive from it.")),
}
#: The options of a scoring run (evaluate and score); their parameter names are ``multiid_bench.api``'s.
RUN_OPTIONS = ("bench", "subsets", "limit", "out", "protocol", "profile", "device", "batch_size", "offline", "shard",
               "cache_dir", "ref_source", "scorers", "seed", "paper_pixels", "overwrite")


def run_options(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the named shared options, in order (defined once so names and help never drift across commands)."""
    def add(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in reversed(names):
            decls, kw = _OPTIONS[name]
            fn = click.option(*decls, **kw)(fn)
        return fn
    return add


def parse_settings(items: tuple[str, ...]) -> dict[str, Any]:
    """``-S key=value`` pairs; values are JSON when they parse (numbers, true/false, null, lists), else strings.

    Example:
        >>> parse_settings(("steps=28", "flux=/models/flux", "fast=true"))
        {'steps': 28, 'flux': '/models/flux', 'fast': True}
    """
    import json

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="-S/--setting")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def print_table(title: str, header: list[str], rows: list[list[str]], *, key_columns: int = 1,
                console: Any = None) -> None:
    """A rich table on stdout, or "No results found." for no rows.

    Words never break: a column is at least as wide as its longest word (header words may wrap between words).
    When that does not fit the console (80 columns, a pipe), the other columns go into further tables that
    repeat the first ``key_columns`` (the row names); a column too wide even for that is printed as a list
    (row name, then the value on its own indented line).
    """
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not rows:
        console.print("No results found.")
        return
    widths = [max([len(w) for w in h.split()] + [len(str(r[i])) for r in rows]) for i, h in enumerate(header)]
    parts, current = [], list(range(key_columns))
    base = sum(widths[i] + 3 for i in current) + 1
    used = base
    for i in range(key_columns, len(header)):
        if used + widths[i] + 3 > console.width and len(current) > key_columns:
            parts.append(current)
            current, used = list(range(key_columns)), base
        current.append(i)
        used += widths[i] + 3
    parts.append(current)
    for n, cols in enumerate(parts):
        suffix = f" ({n + 1}/{len(parts)})" if len(parts) > 1 else ""
        if sum(widths[i] + 3 for i in cols) + 1 > console.width:
            # even one column beside the row names does not fit (a long file name at 80 columns): a list of
            # "name" / "  value" lines instead of a table that would break the value in the middle of a word
            console.print(f"{title}{suffix}", style="italic", markup=False, highlight=False)
            for r in rows:
                console.print(" ".join(str(r[i]) for i in cols[:key_columns]), markup=False, highlight=False)
                for i in cols[key_columns:]:
                    console.print(f"  {header[i]}: {r[i]}", markup=False, highlight=False, soft_wrap=True)
            continue
        table = Table(title=title + suffix)
        for i in cols:
            table.add_column(header[i], width=widths[i], overflow="fold")
        for r in rows:
            table.add_row(*[str(r[i]) for i in cols])
        console.print(table)


def complete_adapter_names(ctx: Any, param: Any, incomplete: str) -> list[str]:
    """Shell completion for ``--model``: the registered adapter names (no adapter module is imported)."""
    from multiid_bench.adapters import list_adapters

    return [name for name in list_adapters() if name.startswith(incomplete)]
