"""Study fixtures: two real demo runs (offline profile, three cases each), made once per test session.

The runs use the suite's session cache (``MBENCH_HOME``, tests/conftest.py), so the demo bench and face
embeddings that other tests built are reused.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from multiid_bench.cli.main import cli

MODELS = ("ground-truth", "copy-reference")


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("study-runs")
    out = []
    for model in MODELS:
        run = root / model
        args = ["evaluate", "--model", model, "--bench", "demo", "--profile", "offline", "--protocol", "strict",
                "--device", "cpu", "--offline", "--out", str(run),
                "--paper-pixels", "as-given", "--no-scorers", "--limit", "3"]
        res = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert res.exit_code == 0, res.output
        out.append(run)
    return out


@pytest.fixture
def make_study(demo_runs: list[Path], tmp_path: Path) -> Callable[..., Path]:
    """make_study(name="study", seed=0) -> a created study folder over the two demo runs (p1, all cases)."""
    def _make(name: str = "study", seed: int = 0) -> Path:
        from multiid_bench.study.create import create_study

        create_study(demo_runs, tmp_path / name, per_subset={"p1": None}, seed=seed)
        return tmp_path / name

    return _make
