"""Item 1: a per-image or per-case step that raises becomes that case's failed row; ids are limited; long ids
never make a file name the file system refuses."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from runner_fakes import FakeWorld, rows_of, run

from multiid_bench.data.case import MAX_CASE_ID_LENGTH
from multiid_bench.data.loaders import open_bench
from multiid_bench.runner.run_folder import MAX_STEM_BYTES, image_path
from multiid_bench.runner.sources import FolderSource


def _images_for(world: FakeWorld, folder: Path) -> Path:
    """A score folder: each case's generated image is its GT (the ground-truth model)."""
    (folder / "images").mkdir(parents=True)
    for case in world.bench.cases:
        Image.open(case.gt).save(folder / "images" / f"{case.id}.png")
    return folder


def test_an_image_over_jpegs_side_limit_is_one_row_and_the_run_goes_on(world: FakeWorld, tmp_path: Path) -> None:
    images = _images_for(world, tmp_path / "gen")
    wide = np.zeros((20, 70000, 3), np.uint8)  # 1.4 MP, under the pixel limit; JPEG refuses a side > 65,500 px
    Image.fromarray(wide).save(images / "images" / "case00.png")
    out = tmp_path / "out"
    for attempt in range(2):  # and the resume does not crash on it either
        outcome = run(world, "pill", out, tmp_path / "cache", source=FolderSource(images), paper_pixels="official")
        rows = rows_of(out)
        assert sorted(rows) == ["case00", "case01", "case02"], attempt
    assert rows["case01"]["status"] == "ok" and rows["case02"]["status"] == "ok"
    # the JPEG view fails, the file as given is scored (said in the row); the black image holds no face: a model
    # outcome (issue 23's status), never a crash or a lost row
    assert rows["case00"]["status"] == "missing_faces" and "no face in generated image" in rows["case00"]["reason"]
    assert any("JPEG view of the generated image failed" in n for n in rows["case00"]["notes"])  # never silent
    assert outcome.complete


def test_an_over_long_case_id_is_one_invalid_record_row(tmp_path: Path) -> None:
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    rec = {"prompt": "p", "refs": ["a.png"], "gt": "a.png", "num_persons": 1}
    lines = [{"id": "ok1", **rec}, {"id": "x" * 300, **rec}, {"id": "bell\x07", **rec}]
    (tmp_path / "bench.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
    load = open_bench(str(tmp_path / "bench.jsonl"))
    assert [c.id for c in load.bench.cases] == ["ok1"]
    assert len(load.invalid) == 2
    too_long = load.invalid[0]
    assert too_long.case_id is None and str(MAX_CASE_ID_LENGTH) in too_long.reason


def test_stored_file_names_of_long_ids_are_hashed_and_distinct(tmp_path: Path) -> None:
    a, b = "é" * MAX_CASE_ID_LENGTH, "é" * (MAX_CASE_ID_LENGTH - 1) + "e"
    pa, pb = image_path(tmp_path, a), image_path(tmp_path, b)
    assert pa != pb and len(pa.name.encode()) <= MAX_STEM_BYTES + 4
    pa.parent.mkdir()
    pa.write_bytes(b"x")  # the file system accepts the name (a raw 400-byte name raises "File name too long")
    assert image_path(tmp_path, "p1_0001").name == "p1_0001.png"


def test_a_generated_image_png_cannot_hold_fails_its_case(world: FakeWorld, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    from multiid_bench.adapters import get_adapter
    from multiid_bench.adapters.base import GenerationResult
    from multiid_bench.runner.sources import AdapterSource

    class FloatImages(type(get_adapter("ground-truth"))):  # type: ignore[misc]
        def generate(self, case, seed):  # noqa: ANN001, ANN201
            res = super().generate(case, seed)
            if case.id != "case01":
                return res
            return GenerationResult(PILImage.new("F", (8, 8)), res.record)  # PNG cannot store mode F

    out = tmp_path / "out"
    outcome = run(world, "ground-truth", out, tmp_path / "cache", source=AdapterSource(FloatImages(), out, global_seed=0))
    rows = rows_of(out)
    assert outcome.complete and rows["case01"]["status"] == "failed" and "PNG" in rows["case01"]["reason"]
    assert rows["case00"]["status"] == "ok" and rows["case02"]["status"] == "ok"
