"""Pieces every command shares: ``-S key=value`` settings and the one table printer (rich, lazily)."""
from __future__ import annotations

from typing import Any

import click

__all__ = ["parse_settings", "print_table"]


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


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """A rich table on stdout, or "No results found." for no rows."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not rows:
        console.print("No results found.")
        return
    table = Table(title=title)
    for h in header:
        table.add_column(h, overflow="fold")
    for r in rows:
        table.add_row(*r)
    console.print(table)
