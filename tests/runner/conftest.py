"""Fixtures for runner tests; the fakes themselves live in ``runner_fakes.py``."""
from __future__ import annotations

from pathlib import Path

import pytest
from runner_fakes import FakeWorld, make_world


@pytest.fixture
def world(tmp_path: Path) -> FakeWorld:
    return make_world(tmp_path / "bench")
