"""Sharding is a deterministic partition by case id; launcher environments split further."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multiid_bench.errors import ConfigError
from multiid_bench.runner.run_folder import rows_file
from multiid_bench.runner.shard import Shard, case_shard, parse_shard, resolve_shard, select_shard


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=8), unique=True, max_size=40), st.integers(1, 6))
def test_shards_partition_the_cases(ids: list[str], n: int) -> None:
    parts = [select_shard(ids, Shard(i, n), key=str) for i in range(n)]
    assert sorted(x for p in parts for x in p) == sorted(ids)
    assert sum(len(p) for p in parts) == len(ids)
    assert all(case_shard(x, n) == i for i, p in enumerate(parts) for x in p)


def test_parse_and_environment() -> None:
    assert parse_shard("0/2") == Shard(0, 2)
    for bad in ("2/2", "a/b", "1", "-1/3"):
        with pytest.raises(ConfigError):
            parse_shard(bad)
    assert resolve_shard(None, {}) == Shard(0, 1)
    assert resolve_shard(None, {"RANK": "3", "WORLD_SIZE": "4"}) == Shard(3, 4)
    assert resolve_shard(Shard(1, 2), {"RANK": "0", "WORLD_SIZE": "1"}) == Shard(1, 2)
    with pytest.raises(ConfigError, match="RANK/WORLD_SIZE"):
        resolve_shard(None, {"RANK": "x", "WORLD_SIZE": "2"})


def test_rows_file_names(tmp_path: Path) -> None:
    assert rows_file(tmp_path, Shard()).name == "cases.jsonl"
    assert rows_file(tmp_path, Shard(1, 12)).name == "cases.shard-001-of-012.jsonl"
