"""Docstring examples are specifications: every module with ``>>>`` examples runs them here.

Found by scanning the source folders, so a new module with examples is picked up without editing this
file. (pytest's ``--doctest-modules`` would also try to import worker scripts and conftest files.)
"""
from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"multiid_bench": "multiid_bench", "adapters": "multiid_bench.adapters",
            "leaderboard": "multiid_bench.leaderboard", "reference_model": "multiid_bench.reference_model"}


def _modules_with_examples() -> list[str]:
    names = []
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder)
            if "workers" in rel.parts or ">>> " not in path.read_text(encoding="utf-8"):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join([package, *parts]))
    return names


MODULES = _modules_with_examples()


def test_examples_were_found() -> None:
    assert "multiid_bench.metrics.identity" in MODULES


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name: str) -> None:
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"
