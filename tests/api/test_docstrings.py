"""Every public function of ``multiid_bench`` documents every parameter, its return value, its errors and an example.

The check reads the Google-style sections (``Args:`` / ``Attributes:``, ``Returns:``, ``Raises:``, ``Example:``)
and compares the names under ``Args:`` with the signature, so a parameter added without documentation (or
documented after it was removed) fails here.
"""
from __future__ import annotations

import inspect
import re
from typing import Any, Callable, Iterator

import pytest

import multiid_bench as mb

_SECTION = re.compile(r"^(\w[\w ]*):\s*$")


def _sections(doc: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = None
    for line in inspect.cleandoc(doc).splitlines():
        m = _SECTION.match(line)
        if m:
            current = m.group(1)
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def documented_names(lines: list[str]) -> set[str]:
    """``name: ...``, ``a, b: ...`` and ``a / b: ...`` entries at the section's first indentation."""
    entries = [ln for ln in lines if ln.strip()]
    if not entries:
        return set()
    indent = min(len(ln) - len(ln.lstrip()) for ln in entries)
    names: set[str] = set()
    for ln in entries:
        if len(ln) - len(ln.lstrip()) == indent and ":" in ln:
            head = ln.strip().split(":", 1)[0]
            names.update(n.strip() for n in re.split(r"[,/]", head) if n.strip())
    return names


def _parameters(fn: Callable[..., Any]) -> set[str]:
    sig = inspect.signature(fn)
    return {n for n, p in sig.parameters.items() if n not in ("self", "cls") and not n.startswith("_")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def public_callables() -> Iterator[tuple[str, Callable[..., Any], Callable[..., Any]]]:
    """(name, object whose docstring is read, callable whose signature it must match)."""
    for name in dir(mb):
        obj = getattr(mb, name)
        if name.startswith("_") or inspect.ismodule(obj):
            continue
        if inspect.isclass(obj):
            yield name, obj, obj.__init__
            for meth_name, meth in vars(obj).items():
                if not meth_name.startswith("_") and inspect.isfunction(meth):
                    yield f"{name}.{meth_name}", meth, meth
        else:
            yield name, obj, obj


CALLABLES = list(public_callables())


def test_the_surface_is_what_the_docs_promise() -> None:
    names = {n for n, *_ in CALLABLES}
    assert {"evaluate", "score", "generate", "load_run", "score_images", "IdentityScore", "IdentityScore.update",
            "IdentityScore.compute", "Run.metrics", "Run.headline", "Run.cases_frame", "compute_copy_paste"} <= names


@pytest.mark.parametrize(("name", "doc_of", "fn"), CALLABLES, ids=[n for n, *_ in CALLABLES])
def test_docstring_matches_the_signature(name: str, doc_of: Any, fn: Callable[..., Any]) -> None:
    doc = inspect.getdoc(doc_of) or ""
    assert doc, f"{name} has no docstring"
    sections = _sections(doc)
    params = _parameters(fn)
    listed = documented_names(sections.get("Args", []) + sections.get("Attributes", []))
    assert params <= listed, f"{name}: parameters not documented under Args: {sorted(params - listed)}"
    assert listed <= params or inspect.isclass(doc_of), f"{name}: documents parameters it does not take: {sorted(listed - params)}"
    if not inspect.isclass(doc_of):
        returns = inspect.signature(fn).return_annotation
        if returns not in (None, "None"):
            assert "Returns" in sections, f"{name}: no Returns: section"
        assert "Raises" in sections, f"{name}: no Raises: section"
    assert "Example" in sections or "Examples" in sections, f"{name}: no Example: section"


def test_the_checker_catches_an_undocumented_parameter() -> None:
    def f(a: int, b: int) -> int:
        """Add.

        Args:
            a: first.

        Returns:
            The sum.
        """
        return a + b

    assert _parameters(f) - documented_names(_sections(f.__doc__)["Args"]) == {"b"}
