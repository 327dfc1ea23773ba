"""Fixtures for the data tests (plain helpers live in data_fixtures.py so test modules can import them)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from data_fixtures import hf_rows, png_bytes


@pytest.fixture
def write_image() -> Callable[..., Path]:
    def _write(path: Path, color: tuple[int, int, int] = (10, 20, 30), size: tuple[int, int] = (16, 12)) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(color, size))
        return path

    return _write


@pytest.fixture
def jsonl_bench(tmp_path: Path, write_image: Callable[..., Path]) -> Path:
    """A valid two-case manifest with relative paths: one p1 and one p2 case."""
    root = tmp_path / "mydata"
    write_image(root / "gt" / "a.png", (200, 0, 0), (40, 30))
    write_image(root / "gt" / "b.png", (0, 200, 0), (40, 30))
    for name, c in (("a1", (1, 1, 1)), ("b1", (2, 2, 2)), ("b2", (3, 3, 3))):
        write_image(root / "refs" / f"{name}.png", c)
    records = [
        {"id": "a", "prompt": "a person", "gt": "gt/a.png", "refs": ["refs/a1.png"], "boxes": [[1, 2, 11, 12]]},
        {"id": "b", "prompt": "two people", "gt": "gt/b.png", "refs": ["refs/b1.png", "refs/b2.png"],
         "boxes": [[0, 0, 10, 10], [20, 0, 30, 10]], "num_persons": 2, "subset": "p2", "identities": ["x", "y"]},
    ]
    path = root / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def hf_dataset() -> Any:
    datasets = pytest.importorskip("datasets")
    return datasets.Dataset.from_list(hf_rows())
