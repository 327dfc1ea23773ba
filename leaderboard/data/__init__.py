"""Data files shipped with the leaderboard (a package only so that setuptools installs them).

- ``paper_results.csv``, ``paper_correlations.csv``, ``paper.json``: numbers **reported in the paper**,
  transcribed cell by cell with their provenance; read them through :mod:`multiid_bench.leaderboard.paper`.
- ``tolerances.toml``: the default per-metric tolerances of ``mbench compare``.
"""
from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent

__all__ = ["DATA_DIR"]
