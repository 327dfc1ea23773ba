"""Irregular bench rows (kept by the loaders, flagged in Case.meta) are flagged per row and counted."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from runner_fakes import FakeWorld, rows_of, run

from multiid_bench.data.case import Bench


def test_irregular_rows_are_flagged_per_row_and_counted(world: FakeWorld, tmp_path: Path, capsys) -> None:
    flags = {"case02": [{"kind": "num_persons_mismatch", "detail": "num_persons=3 but subset p2 ..."}],
             "case04": [{"kind": "extra_refs", "detail": "5 reference images ..."},
                        {"kind": "box_count", "detail": "1 boxes for 4 references ..."}]}
    cases = tuple(dataclasses.replace(c, meta={"irregular": flags[c.id]}) if c.id in flags else c
                  for c in world.bench.cases)
    world.bench = Bench(id="fake", root=world.root, cases=cases)
    out = tmp_path / "out"
    outcome = run(world, "ground-truth", out, tmp_path / "cache")
    rows = rows_of(out)
    assert {cid: [i["kind"] for i in r["irregular"]] for cid, r in rows.items() if r["irregular"]} == {
        "case02": ["num_persons_mismatch"], "case04": ["extra_refs", "box_count"]}
    results = json.loads((out / "results.json").read_text())
    assert results["counts"]["irregular"] == 2 and results["counts"]["failed"] == 0
    assert results["irregularities"] == {"num_persons_mismatch": 1, "extra_refs": 1, "box_count": 1}
    assert "- 1 x extra_refs" in (out / "summary.md").read_text()
    from multiid_bench.cli.evaluate import _print_summary

    _print_summary(results, out)
    printed = " ".join(capsys.readouterr().out.split())
    assert "2 irregular bench row(s) evaluated as the official conversion would" in printed
    assert "num_persons_mismatch 1, extra_refs 1, box_count 1" in printed
    assert outcome.exit_code == 0
