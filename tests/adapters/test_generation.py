"""``generate_bench``: resume of a half-finished run, sharding, atomic records, settings guard."""
from __future__ import annotations

import json

import pytest

from multiid_bench.adapters.base import derive_seed
from multiid_bench.adapters.dummy import DummyAdapter
from multiid_bench.data.case import Bench
from multiid_bench.errors import ConfigError
from multiid_bench.runner.run_folder import generations_file as records_file
from multiid_bench.runner.run_folder import image_path
from multiid_bench.runner.run_folder import read_generations as read_records
from multiid_bench.runner.shard import Shard
from multiid_bench.runner.sources import AdapterSource, generate_bench


def done_case_ids(out, bench, seed=0):
    """Cases the one resume rule would not generate again."""
    source = AdapterSource(DummyAdapter(), out, global_seed=seed)
    return {c.id for c in bench.cases if source.reusable(c) is not None}


class Counting(DummyAdapter):
    """The dummy, counting calls; ``crash_after`` simulates the process being killed mid-run."""

    def __init__(self, crash_after: int | None = None, fail_ids: tuple[str, ...] = (), **settings):
        super().__init__(**settings)
        self.calls: list[str] = []
        self.loads = 0
        self.crash_after, self.fail_ids = crash_after, fail_ids

    def load(self, device="cpu"):
        self.loads += 1
        super().load(device)

    def generate(self, case, seed):
        if self.crash_after is not None and len(self.calls) >= self.crash_after:
            raise KeyboardInterrupt
        self.calls.append(case.id)
        if case.id in self.fail_ids:
            return _failed(self, case, seed)
        return super().generate(case, seed)


def _failed(adapter, case, seed):
    from multiid_bench.adapters.base import GenerationResult

    return GenerationResult(None, adapter.record(case, seed), "failed", "upstream said no")


@pytest.fixture
def bench(make_case, tmp_path):
    cases = [make_case(1 + i % 3, case_id=f"c{i:02d}") for i in range(8)]
    return Bench(id="tiny", root=tmp_path, cases=tuple(cases))


def _bytes(out, bench):
    return {c.id: image_path(out, c.id).read_bytes() for c in bench.cases}


def test_resume_after_kill_generates_only_the_rest(bench, tmp_path):
    full = tmp_path / "full"
    generate_bench(Counting(), bench, full, global_seed=3)

    out = tmp_path / "half"
    first = Counting(crash_after=3)
    with pytest.raises(KeyboardInterrupt):
        generate_bench(first, bench, out, global_seed=3)
    assert first.calls == ["c00", "c01", "c02"] and done_case_ids(out, bench, 3) == {"c00", "c01", "c02"}

    second = Counting()
    plans = []
    summary = generate_bench(second, bench, out, global_seed=3, on_plan=lambda todo, done: plans.append((todo, done)))
    assert second.calls == [f"c{i:02d}" for i in range(3, 8)] and plans == [(5, 3)]
    assert (summary.ok, summary.skipped_done, summary.failed) == (5, 3, 0)
    assert _bytes(out, bench) == _bytes(full, bench)  # identical to the uninterrupted run
    rows = read_records(out)
    assert sorted(rows) == [c.id for c in bench.cases]
    assert all(r["seed"] == derive_seed(3, cid) and r["image"] == f"images/{cid}.png" for cid, r in rows.items())

    third = Counting()
    generate_bench(third, bench, out, global_seed=3)
    assert third.calls == [] and third.loads == 0  # nothing left: the model is not even loaded


def test_torn_record_line_and_missing_image_are_redone(bench, tmp_path):
    out = tmp_path / "run"
    generate_bench(Counting(), bench, out, global_seed=0)
    path = records_file(out)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # torn last line
    image_path(out, "c00").unlink()  # a record whose image vanished
    again = Counting()
    generate_bench(again, bench, out, global_seed=0)
    assert sorted(again.calls) == ["c00", "c07"]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_failed_cases_kept_unless_retry(bench, tmp_path):
    out = tmp_path / "run"
    s = generate_bench(Counting(fail_ids=("c01",)), bench, out)
    assert s.failed == 1 and s.failures == [("c01", "upstream said no")]
    lines = records_file(out).read_text().splitlines()
    assert read_records(out)["c01"]["status"] == "failed" and not image_path(out, "c01").exists()
    again = Counting()
    generate_bench(again, bench, out)
    assert again.calls == []
    again = Counting()
    generate_bench(again, bench, out, retry_failed=True)
    assert again.calls == ["c01"] and read_records(out)["c01"]["status"] == "ok"
    # appended, never rewritten: the old lines are still there, the retry's record is the last line
    assert records_file(out).read_text().splitlines()[: len(lines)] == lines
    assert len(records_file(out).read_text().splitlines()) == len(lines) + 1


def test_shards_cover_the_bench_once_and_match_unsharded(bench, tmp_path):
    single = tmp_path / "single"
    generate_bench(Counting(), bench, single, global_seed=1)
    sharded = tmp_path / "sharded"
    calls = []
    for i in range(2):
        a = Counting()
        generate_bench(a, bench, sharded, global_seed=1, shard=Shard(i, 2))
        calls.append(a.calls)
    assert sorted(calls[0] + calls[1]) == [c.id for c in bench.cases] and not set(calls[0]) & set(calls[1])
    assert records_file(sharded, Shard(0, 2)).name == "generations.shard-000-of-002.jsonl"
    assert _bytes(sharded, bench) == _bytes(single, bench)
    strip = lambda rows: {k: {f: v for f, v in r.items() if f != "elapsed_s"} for k, r in rows.items()}  # noqa: E731
    assert strip(read_records(sharded)) == strip(read_records(single))


def test_selection_and_settings_guard(bench, tmp_path):
    out = tmp_path / "run"
    a = Counting()
    generate_bench(a, bench, out, global_seed=0, subsets=["p2"], limit=2)
    assert a.calls == ["c01", "c04"]
    cfg = json.loads((out / "generate.json").read_text())
    assert cfg["reportable"] is False and cfg["bench_manifest_sha256"] == bench.manifest_sha256
    assert cfg["seed_rule"].startswith("sha256")
    b = Counting()
    generate_bench(b, bench, out, global_seed=0)  # widening the selection resumes the same run
    assert len(b.calls) == 6
    with pytest.raises(ConfigError, match="global_seed"):
        generate_bench(Counting(), bench, out, global_seed=1)
    with pytest.raises(ConfigError, match="settings"):
        generate_bench(Counting(jitter=0.2), bench, out, global_seed=0)


def test_an_adapter_exception_fails_its_case_unless_its_policy_stops_the_run(bench, tmp_path):
    from multiid_bench.errors import CaseError, MissingWeightsError

    class Raising(Counting):
        def __init__(self, exc, **kw):
            super().__init__(**kw)
            self.exc = exc

        def generate(self, case, seed):
            if case.id == "c02":
                raise self.exc
            return super().generate(case, seed)

    s = generate_bench(Raising(RuntimeError("CUDA error")), bench, tmp_path / "a")
    assert (s.ok, s.failed) == (7, 1) and s.failures[0][0] == "c02"
    assert s.failures[0][1].startswith("RuntimeError: CUDA error (at test_generation.py:")  # where the bug is
    s = generate_bench(Raising(CaseError("refused by the API")), bench, tmp_path / "b")
    assert s.failures == [("c02", "CaseError: refused by the API")]
    with pytest.raises(MissingWeightsError):
        generate_bench(Raising(MissingWeightsError("no weights")), bench, tmp_path / "c")
