"""``mbench weights pin``: write the Hub's commit, size and LFS sha256 of every Hub file into the manifests.

Why: a manifest that says ``revision = "main"`` gets whatever the repo holds today, and a file without a
sha256 is trusted on first use. The Hub publishes both the commit a branch points at and the sha256 of
every LFS file, so a maintainer with network access runs this once and commits the result.

The manifests are edited as text (only the values of ``revision``, ``size``, ``sha256`` and
``sha256_note`` inside the one inline table of that file), so comments and layout stay; the result is
parsed again and checked before it replaces the file. A manifest hash that disagrees with the Hub's is
reported, never overwritten.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiid_bench.errors import ConfigError
from multiid_bench.weights import hf
from multiid_bench.weights.manifest import MANIFEST_DIR, WeightFile, load_manifests

__all__ = ["PinChange", "pin_manifests"]


@dataclass(frozen=True)
class PinChange:
    """What ``pin`` did (or would do) to one file entry."""

    weight_id: str
    name: str
    manifest: str
    revision: tuple[str, str]  # (before, after)
    size: tuple[int, int]
    sha256: tuple[str, str]
    conflict: str = ""

    @property
    def changed(self) -> bool:
        return (self.revision[0] != self.revision[1] or self.size[0] != self.size[1]
                or self.sha256[0] != self.sha256[1])


def _commit(api: Any, wf: WeightFile) -> str:
    if hf.is_pinned(wf.revision):
        return wf.revision
    sha = getattr(api.repo_info(wf.repo, revision=wf.revision, repo_type=wf.repo_type), "sha", None)
    if not sha or not hf.is_pinned(str(sha)):
        raise ConfigError(f"the Hub gave no commit for {wf.repo}@{wf.revision}")
    return str(sha)


def _table_span(text: str, start: int) -> tuple[int, int]:
    """``(open, close+1)`` of the inline table that opens at or after ``start`` (quotes respected)."""
    i = text.index("{", start)
    depth, quote, j = 0, "", i
    while j < len(text):
        c = text[j]
        if quote:
            if c == "\\":
                j += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i, j + 1
        j += 1
    raise ConfigError("unbalanced inline table")


def _set_key(table: str, key: str, literal: str, after: str) -> str:
    """Set ``key = literal`` at the top level of an inline table (replace, or insert after key ``after``)."""
    pattern = re.compile(rf'(?<![\w-]){key}\s*=\s*("[^"]*"|\d+)')
    if pattern.search(table):
        return pattern.sub(lambda m: f"{key} = {literal}", table, count=1)
    anchor = re.compile(rf'(?<![\w-]){after}\s*=\s*("[^"]*"|\d+)')
    m = anchor.search(table)
    if m is None:
        raise ConfigError(f"cannot place {key} in {table[:80]}...")
    return table[: m.end()] + f", {key} = {literal}" + table[m.end():]


def _edit(text: str, wid: str, name: str, revision: str, size: int, sha: str, note: str) -> str:
    block = re.search(rf'(?m)^id\s*=\s*"{re.escape(wid)}"\s*$', text)
    if block is None:
        raise ConfigError(f"weights id {wid!r} not found")
    head = re.compile(rf'\{{\s*name\s*=\s*"{re.escape(name)}"')
    m = head.search(text, block.end())
    if m is None:
        raise ConfigError(f"file {name!r} of {wid!r} not found")
    a, b = _table_span(text, m.start())
    table = text[a:b]
    table = _set_key(table, "revision", f'"{revision}"', "filename" if "filename" in table else "repo")
    if size:
        table = _set_key(table, "size", str(size), "name")
    if sha:
        table = _set_key(table, "sha256", f'"{sha}"', "name")
        table = _set_key(table, "sha256_note", f'"{note}"', "sha256") if "sha256_note" in table else table
    return text[:a] + table + text[b:]


def pin_manifests(api: Any = None, *, manifest_dir: Path = MANIFEST_DIR, ids: Iterable[str] | None = None,
                  write: bool = True) -> list[PinChange]:
    """Fill commit, size and LFS sha256 of every Hub file of ``ids`` (default: all) into the manifests.

    Args:
        api: an ``HfApi``-like object (``repo_info``, ``get_paths_info``); default ``HfApi()`` (network).
        write: False = dry run (report only).
    """
    if api is None:
        api = _default_api()
    entries = load_manifests([manifest_dir])
    wanted = set(ids) if ids is not None else None
    changes: list[PinChange] = []
    texts: dict[str, str] = {}
    for wid, entry in entries.items():
        if wanted is not None and wid not in wanted:
            continue
        for wf in entry.files:
            if not wf.hub:
                continue
            commit = _commit(api, wf)
            size, sha, conflict = wf.size, wf.sha256, ""
            if not wf.snapshot:
                info = hf.hub_file_info(wf, api, revision=commit)
                size = info.size
                if info.sha256 and wf.sha256 and info.sha256 != wf.sha256:
                    conflict = f"manifest sha256 {wf.sha256} != Hub LFS sha256 {info.sha256} at {commit}"
                elif info.sha256:
                    sha = info.sha256
            if conflict:
                size = wf.size
            change = PinChange(wid, wf.name, entry.source, (wf.revision, commit), (wf.size, size),
                               (wf.sha256, sha), conflict)
            changes.append(change)
            if change.changed and write and not conflict:
                text = texts.get(entry.source) or Path(entry.source).read_text(encoding="utf-8")
                note = f"Hub LFS sha256 at commit {commit[:12]} (mbench weights pin)"
                texts[entry.source] = _edit(text, wid, wf.name, commit, size, sha if sha != wf.sha256 else "", note)
    for source, text in texts.items():
        _replace_checked(Path(source), text)
    if texts:  # the edited manifests must parse and hold exactly the new values
        after = load_manifests([manifest_dir])
        for c in changes:
            if c.changed and write and not c.conflict:
                wf = after[c.weight_id].file(c.name)
                if (wf.revision, wf.size, wf.sha256) != (c.revision[1], c.size[1], c.sha256[1]):
                    raise ConfigError(f"pin wrote {c.manifest} but {c.weight_id}/{c.name} reads back as "
                                      f"{(wf.revision, wf.size, wf.sha256)}")
    return changes


def _default_api() -> Any:
    import os

    from huggingface_hub import HfApi

    return HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None)


def _replace_checked(path: Path, text: str) -> None:
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    tomllib.loads(text)  # never write a manifest that does not parse
    tmp = path.with_name(f".{path.name}.pin")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
