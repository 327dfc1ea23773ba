"""Static errors (undefined names, unused imports, syntax) fail the suite: ruff with pyproject's rules."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_no_errors() -> None:
    ruff = shutil.which("ruff") or (Path(sys.executable).parent / "ruff")
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (it comes with the [test] extra: pip install -e '.[test]')")
    paths = ["multiid_bench", "adapters", "leaderboard", "reference_model", "tests", "benchmarks"]
    result = subprocess.run([str(ruff), "check", "--output-format", "concise", *paths], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
