"""``results.json`` validation for the leaderboard: the runner's one schema file, checked by ``jsonschema``
(kept as a module so that ``multiid_bench.leaderboard.schema.validate`` stays importable)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from multiid_bench.runner.run_folder import SCHEMA_PATH, load_schema, schema_errors

__all__ = ["results_schema", "results_schema_path", "validate"]


def results_schema_path() -> Path:
    return SCHEMA_PATH


def results_schema() -> dict[str, Any]:
    return load_schema()


def validate(instance: Any, schema: Mapping[str, Any] | None = None) -> list[str]:
    """Every violation as ``"<json path>: <message>"``; an empty list means valid."""
    return schema_errors(instance, schema)
