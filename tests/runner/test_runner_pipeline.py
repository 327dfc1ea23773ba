"""The runner end to end on the colour-square world: oracles, work counting, resume, shards, bad input."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runner_fakes import GT_COLOURS, REF_COLOURS, FakeWorld, make_world, rows_of, run

from multiid_bench.adapters import get_adapter
from multiid_bench.data.case import Bench, Case
from multiid_bench.data.loaders import InvalidRecord
from multiid_bench.errors import ConfigError
from multiid_bench.runner.sources import FolderSource


def shade(colour: tuple[int, int, int], case: int) -> tuple[int, int, int]:
    return tuple(int(c) - 3 * case for c in colour)  # type: ignore[return-value]


def test_oracles_are_exact_and_a_second_model_embeds_only_its_images(world: FakeWorld, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    gt = run(world, "ground-truth", tmp_path / "gt", cache, paper_pixels="as-given")  # formulas on the files
    assert gt.complete and gt.exit_code == 0 and gt.results is not None
    for r in rows_of(tmp_path / "gt").values():
        s = r["scores"]["strict"]["fake"]
        assert r["status"] == "ok" and abs(s["sim_gt"] - 1) <= 1e-6 and abs(s["copy_paste"] + 1) <= 1e-6
        assert r["scores"]["paper"]["fake"]["sim_gt"] == pytest.approx(1.0, abs=1e-6)
    # Each image embedded once: every GT face twice (GT photo + the identical generated image), every ref face once.
    persons = [c.num_persons for c in world.bench.cases]
    expected = Counter()
    for i, k in enumerate(persons):
        for j in range(k):
            expected[shade(GT_COLOURS[j], i)] += 2
            expected[shade(REF_COLOURS[j], i)] += 1
    assert Counter(world.model.seen) == expected
    n_images = sum(2 + k for k in persons)
    assert gt.results["work"]["images_embedded"]["fake"] == n_images
    assert gt.results["work"]["images_decoded"] == n_images
    assert world.detector.images_seen == n_images  # one detection per image

    # Second model on the same bench with a warm cache: GT and references are embedded zero times.
    world.model.seen.clear()
    cp = run(world, "copy-reference", tmp_path / "cp", cache, paper_pixels="as-given")
    assert Counter(world.model.seen) == Counter(shade(REF_COLOURS[j], i) for i, k in enumerate(persons) for j in range(k))
    work = cp.results["work"]
    assert work["images_embedded"]["fake"] == len(persons)  # only the generated images
    assert work["cache_hits"]["emb:fake"] == sum(1 + k for k in persons)
    for r in rows_of(tmp_path / "cp").values():
        s = r["scores"]["strict"]["fake"]
        assert abs(s["sim_ref"] - 1) <= 1e-6 and abs(s["copy_paste"] - 1) <= 1e-6
        paper = r["scores"]["paper"]["fake"]
        assert 0.9 < paper["copy_paste"] < 1.0  # the documented (|x| + 1e-6) offset, never above +1
    strict = cp.results["metrics"]["strict"]["all"]
    assert strict["copy_paste.fake"]["value"] == pytest.approx(1.0, abs=1e-6)
    assert strict["face_failure_rate.fake"]["value"] == 0.0
    assert (tmp_path / "cp" / "summary.md").read_text().count("| all | fake |") == 2
    assert "protocol,subset,metric" in (tmp_path / "cp" / "summary.csv").read_text()


class Interrupt(Exception):
    pass


def test_killed_run_resumes_to_the_same_metrics(world: FakeWorld, tmp_path: Path) -> None:
    full = run(world, "ground-truth", tmp_path / "full", tmp_path / "c1", chunk_cases=2)

    seen = []

    def die_after_three(row: Any) -> None:
        seen.append(row["case_id"])
        if len(seen) == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        run(world, "ground-truth", tmp_path / "part", tmp_path / "c2", chunk_cases=2, on_row=die_after_three)
    assert len(rows_of(tmp_path / "part")) == 3 and not (tmp_path / "part" / "results.json").exists()
    with (tmp_path / "part" / "cases.jsonl").open("a") as f:
        f.write('{"case_id": "torn')  # and the kill tore a line
    resumed = run(world, "ground-truth", tmp_path / "part", tmp_path / "c2", chunk_cases=2)
    assert resumed.skipped == 3 and resumed.rows_written == 3 and resumed.complete
    assert resumed.results["metrics"] == full.results["metrics"]
    assert resumed.results["counts"] == full.results["counts"]
    again = run(world, "ground-truth", tmp_path / "part", tmp_path / "c2")
    assert again.rows_written == 0 and again.results["metrics"] == full.results["metrics"]


def test_shards_merge_to_the_single_process_result(world: FakeWorld, tmp_path: Path) -> None:
    single = run(world, "ground-truth", tmp_path / "single", tmp_path / "cache")
    first = run(world, "ground-truth", tmp_path / "sharded", tmp_path / "cache", shard_index=0, shard_count=2)
    second = run(world, "ground-truth", tmp_path / "sharded", tmp_path / "cache", shard_index=1, shard_count=2)
    assert first.planned + second.planned == len(world.bench.cases) and first.planned > 0 and second.planned > 0
    assert not first.complete and second.complete
    assert second.results["metrics"] == single.results["metrics"]
    assert second.results["counts"] == single.results["counts"]
    assert len(list((tmp_path / "sharded").glob("cases.shard-*-of-*.jsonl"))) == 2


def test_batch_size_and_chunking_do_not_change_numbers(world: FakeWorld, tmp_path: Path) -> None:
    a = run(world, "copy-reference", tmp_path / "a", tmp_path / "ca", batch_size=1, chunk_cases=1)
    b = run(world, "copy-reference", tmp_path / "b", tmp_path / "cb", batch_size=64, chunk_cases=64)
    assert a.results["metrics"] == b.results["metrics"]


def test_bad_input_fails_cases_with_reasons_and_the_run_goes_on(tmp_path: Path) -> None:
    world = make_world(tmp_path / "bench", persons=(1, 1, 1, 2, 1, 2))
    cases = list(world.bench.cases)
    cases[3] = Case(id="noGT", subset="p2", prompt="x", gt=None, refs=cases[3].refs, boxes=cases[3].boxes, num_persons=2)
    cases[4] = Case(id="refs", subset="p2", prompt="x", gt=cases[4].gt, refs=cases[4].refs, num_persons=2)
    world.bench = Bench(id="fake", root=world.root, cases=tuple(cases))
    images = tmp_path / "images"
    images.mkdir()
    gt_oracle = get_adapter("ground-truth")
    for c in cases:
        if c.gt is not None:
            gt_oracle.generate(c, 0).image.save(images / f"{c.id}.png")  # type: ignore[union-attr]
    (images / "case00.png").unlink()  # missing
    (images / "case01.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)  # corrupt
    Path(images / "noGT.png").write_bytes((images / "case02.png").read_bytes())
    # case05 has two people but the image shows only one of them
    arr = np.asarray(gt_oracle.generate(cases[5], 0).image).copy()  # type: ignore[arg-type]
    arr[8:32, 40:64] = 0
    from PIL import Image

    Image.fromarray(arr).save(images / "case05.png")
    bad = InvalidRecord(source="bench.jsonl", case_id="broken", field="refs", reason="not a list", line=7)
    out = run(world, "images", tmp_path / "out", tmp_path / "cache", source=FolderSource(images), invalid=(bad,))
    rows = rows_of(tmp_path / "out")
    assert out.complete and out.exit_code == 4
    assert rows["case00"]["status"] == "failed" and "not found" in rows["case00"]["reason"]
    assert rows["case01"]["status"] == "failed" and "unreadable" in rows["case01"]["reason"]
    assert rows["case02"]["status"] == "ok"
    assert rows["noGT"]["status"] == "failed" and "no GT image" in rows["noGT"]["reason"]
    assert rows["noGT"]["scores"]["strict"]["fake"]["sim_ref"] is not None  # computed values are kept
    assert rows["refs"]["reason"] == "1 reference image(s) for 2 person(s)"
    # a model outcome, not a failure: scored (strict counts the missing identity), its own status
    assert rows["case05"]["status"] == "missing_faces" and rows["case05"]["reason"] == "2 faces expected, 1 found"
    assert rows["case05"]["scores"]["strict"]["fake"]["missing"] == 1
    assert rows["broken"]["status"] == "failed" and "bench.jsonl line 7" in rows["broken"]["reason"]
    counts = out.results["counts"]
    assert counts == {"expected": 7, "ok": 1, "missing_faces": 1, "evaluated": 3, "failed": 5, "not_applicable": 0,
                      "pending": 0, "irregular": 0, "excluded": {"paper": 0, "strict": 0}}
    assert counts["ok"] + counts["missing_faces"] + counts["failed"] + counts["not_applicable"] == counts["expected"]
    assert out.results["partial"] is True and sum(out.results["failures"].values()) == 5
    assert out.results["missing_faces"]["reasons"] == {"2 faces expected, 1 found": 1}
    assert "official script" in out.results["missing_faces"]["paper"]


def test_limit_is_not_reportable_and_changed_settings_refuse_to_resume(world: FakeWorld, tmp_path: Path) -> None:
    out = run(world, "ground-truth", tmp_path / "o", tmp_path / "c", limit=2)
    assert out.results["counts"]["expected"] == 2 and out.results["reportable"] is False
    with pytest.raises(ConfigError, match="another run"):
        run(world, "ground-truth", tmp_path / "o", tmp_path / "c", cp_eps=1e-3)
    full = run(world, "ground-truth", tmp_path / "o", tmp_path / "c")  # dropping --limit resumes the same run
    assert full.skipped == 2 and full.results["reportable"] is True


def test_not_applicable_is_recorded_not_failed(world: FakeWorld, tmp_path: Path) -> None:
    cases = [c if c.num_persons == 1 else Case(id=c.id, subset=c.subset, prompt=c.prompt, gt=c.gt, refs=c.refs,
                                                 num_persons=c.num_persons) for c in world.bench.cases]
    world.bench = Bench(id="fake", root=world.root, cases=tuple(cases))  # no boxes: copy-reference cannot paste
    out = run(world, "copy-reference", tmp_path / "o", tmp_path / "c")
    counts = out.results["counts"]
    assert counts["not_applicable"] == 4 and counts["failed"] == 0 and out.exit_code == 0
    assert out.results["metrics"]["strict"]["all"]["sim_ref.fake"]["n"] == 2


def test_duplicated_case_id_never_hides_the_first_case(world: FakeWorld, tmp_path: Path) -> None:
    """A JSONL bench repeating an id: the loader keeps the first case and reports the second as broken; its
    failure row gets its own id, so the first case's scores stay in the aggregate and counts add up."""
    dup = InvalidRecord(source="bench.jsonl", case_id="case00", field="id", reason="duplicate id (first on line 1)",
                        line=9)
    noid = InvalidRecord(source="bench.jsonl", case_id=None, field="<line>", reason="not valid JSON", line=9)
    out = run(world, "ground-truth", tmp_path / "o", tmp_path / "c", invalid=(dup, noid))
    rows = rows_of(tmp_path / "o")
    n_rows = sum(len(f.read_text().splitlines()) for f in (tmp_path / "o").glob("cases*.jsonl"))
    assert n_rows == len(rows) == 8
    assert rows["case00"]["status"] == "ok" and rows["case00"]["scores"]["strict"]["fake"]["sim_gt"] is not None
    assert rows["case00@line-9"]["status"] == "failed" and "duplicate id" in rows["case00@line-9"]["reason"]
    assert rows["invalid-record@line-9"]["status"] == "failed"
    c = out.results["counts"]
    assert c == {"expected": 8, "ok": 6, "missing_faces": 0, "evaluated": 6, "failed": 2, "not_applicable": 0,
                 "pending": 0, "irregular": 0, "excluded": {"paper": 0, "strict": 0}}
    assert c["ok"] + c["failed"] + c["not_applicable"] + c["pending"] == c["expected"] == n_rows
    assert out.results["metrics"]["strict"]["all"]["sim_gt.fake"]["n"] == 6


def test_retry_failed_redoes_failed_generations_and_the_new_row_wins(world: FakeWorld, tmp_path: Path) -> None:
    from multiid_bench.runner.sources import AdapterSource

    class Flaky(type(get_adapter("ground-truth"))):  # refuses case01 until told otherwise
        refuse = True

        def generate(self, case, seed):
            if case.id == "case01" and Flaky.refuse:
                raise RuntimeError("upstream said no")
            return super().generate(case, seed)

    out, cache = tmp_path / "o", tmp_path / "c"
    first = run(world, "ground-truth", out, cache, source=AdapterSource(Flaky(), out, global_seed=0))
    assert first.results["counts"]["failed"] == 1 and "upstream said no" in rows_of(out)["case01"]["reason"]
    error = rows_of(out)["case01"]["generation"]["error"]  # the model's own bug: type, message, last frame
    assert error["type"] == "RuntimeError" and "test_runner_pipeline.py:" in error["where"]
    assert "Traceback" in (out / "run.log").read_text()
    assert list(first.results["failures"]) == [f"RuntimeError at {error['where']}"]
    Flaky.refuse = False
    again = run(world, "ground-truth", out, cache, source=AdapterSource(Flaky(), out, global_seed=0))
    assert again.rows_written == 0  # without retry_failed a failed case stays failed (and costs nothing)
    retried = run(world, "ground-truth", out, cache, source=AdapterSource(Flaky(), out, global_seed=0, retry_failed=True))
    assert retried.rows_written == 1 and rows_of(out)["case01"]["status"] == "ok"
    c = retried.results["counts"]
    assert (c["expected"], c["ok"], c["failed"]) == (6, 6, 0) and len((out / "cases.jsonl").read_text().splitlines()) == 7


def test_official_pixels_default_decodes_once_and_embeds_each_view_once(world: FakeWorld, tmp_path: Path) -> None:
    """The default paper protocol scores the JPEG bytes the official pipeline stored: one more view per image
    (generated x1, GT x2, references x1 round trips), made from the one decode; strict keeps the files."""
    out = run(world, "ground-truth", tmp_path / "gt", tmp_path / "cache")
    persons = [c.num_persons for c in world.bench.cases]
    n_images = sum(2 + k for k in persons)
    work = out.results["work"]
    assert out.results["config"]["paper_pixels"] == "official"
    assert work["images_decoded"] == n_images
    assert work["images_embedded"]["fake"] == 2 * n_images
    for r in rows_of(tmp_path / "gt").values():
        assert r["paper_pixels"] == {"generated_jpeg": 1, "gt_jpeg": 2, "refs_jpeg": [1] * len(r["images"]["refs"])}
        assert abs(r["scores"]["strict"]["fake"]["sim_gt"] - 1) <= 1e-6
