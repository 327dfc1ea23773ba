"""Leaderboard test fixtures (helpers live in lb_fixtures.py so test modules can import them by name)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
from lb_fixtures import base_results, demo_cases, write_run


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """make_run(name, results=None, cases=True, **results_overrides) -> run directory."""
    def _make(name: str = "run", results: dict[str, Any] | None = None, cases: bool | list[dict[str, Any]] = True,
              **over: Any) -> Path:
        root = tmp_path / name
        res = results if results is not None else base_results(**over)
        rows = demo_cases(root) if cases is True else (cases or None)
        return write_run(root, res, rows)

    return _make
