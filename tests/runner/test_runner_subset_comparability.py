"""A run over one subset is comparable with a full run on that subset (same source bench, same case ids)."""
from __future__ import annotations

from pathlib import Path

from runner_fakes import FakeWorld, run

from multiid_bench.leaderboard.comparability import differences, run_key
from multiid_bench.leaderboard.store import combined_frame, load_results
from multiid_bench.leaderboard.tables import build_leaderboard


def test_subset_run_ranks_next_to_a_full_run_on_that_subset_only(world: FakeWorld, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    full = run(world, "ground-truth", tmp_path / "full", cache, paper_pixels="as-given").results
    part = run(world, "copy-reference", tmp_path / "p2", cache, paper_pixels="as-given", subsets=("p2",)).results
    assert full is not None and part is not None
    assert part["bench"]["manifest_sha256"] != full["bench"]["manifest_sha256"]  # a selection of the bench
    assert part["bench"]["subset_sha256"]["p2"] == full["bench"]["subset_sha256"]["p2"]
    assert part["bench"]["source_sha256"] == full["bench"]["source_sha256"]
    assert not differences(run_key(full, label="full", subset="p2"), run_key(part, label="part", subset="p2"))
    assert differences(run_key(full, label="full", subset="all"), run_key(part, label="part", subset="all"))
    assert differences(run_key(full, label="full"), run_key(part, label="part"))  # no subset: the manifests

    df = combined_frame([load_results(tmp_path / "full"), load_results(tmp_path / "p2")], include_paper=False)
    p2 = build_leaderboard(df, subset="p2", protocol="strict", face_model="fake")
    assert [r.comparable for r in p2.rows] == [True, True] and not p2.banners  # oracles: comparable, not ranked
    every = build_leaderboard(df, subset="all", protocol="strict", face_model="fake")
    assert [r.comparable for r in every.rows] == [True, False] and "not comparable" in every.banners[0]


def test_rows_name_each_reference_identity_when_the_bench_does(world: FakeWorld, tmp_path: Path) -> None:
    import dataclasses

    from runner_fakes import rows_of

    from multiid_bench.data.case import Bench

    cases = tuple(dataclasses.replace(c, meta={"identities": [f"person{j}" for j in range(c.num_persons)]})
                  for c in world.bench.cases)
    world.bench = Bench(id=world.bench.id, root=world.bench.root, cases=cases)
    run(world, "ground-truth", tmp_path / "gt", tmp_path / "cache", paper_pixels="as-given")
    for row in rows_of(tmp_path / "gt").values():
        assert [r["identity"] for r in row["images"]["refs"]] == [f"person{j}" for j in range(row["num_persons"])]
