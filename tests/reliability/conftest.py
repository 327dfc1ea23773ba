"""Fixtures for the reliability tests (issue 25): the runner's colour-square fake world, reused by name."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runner"))  # runner_fakes (unique module name)

from runner_fakes import FakeWorld, make_world  # noqa: E402


@pytest.fixture
def world(tmp_path: Path) -> FakeWorld:
    return make_world(tmp_path / "bench", persons=(1, 1, 2))
