"""Rows the official conversion accepts are evaluated, not refused: each loader keeps and flags them.

The official ``hf2bench`` goes by ``subset`` (first 1 / 2 / all input images for p1 / p2 / p3; the
evaluator has 4 reference slots), never reads the dataset's boxes and reads ``num_persons`` only to
name p3 folders. So a row whose ``num_persons``, box count or image count disagree is still a case.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from data_fixtures import jpeg_bytes, png_bytes
from PIL import Image

from multiid_bench.data.loaders import load_bench, open_bench, regularise
from multiid_bench.data.official import import_official


def _kinds(case: Any) -> list[str]:
    return [i["kind"] for i in case.meta.get("irregular", [])]


def test_regularise_rules() -> None:
    assert regularise("p2", ["a", "b"], [[0, 0, 1, 1]] * 2, 2) == (["a", "b"], [[0, 0, 1, 1]] * 2, 2, [])
    refs, boxes, n, irr = regularise("p1", ["a", "b", "c"], [[0, 0, 1, 1], [1, 1, 2, 2]], 3)
    assert (refs, boxes, n) == (["a"], [[0, 0, 1, 1]], 1)
    assert [i["kind"] for i in irr] == ["extra_refs", "num_persons_mismatch", "box_count"]
    refs, boxes, n, irr = regularise("p3", list("abcdef"), [[0, 0, 1, 1]], None)
    assert (refs, boxes, n, [i["kind"] for i in irr]) == (list("abcd"), [], 4, ["extra_refs", "box_count"])
    assert "6 reference images; subset p3 uses the first 4" in irr[0]["detail"]
    refs, boxes, n, irr = regularise("p3", ["a", "b"], [], 3)
    assert (n, [i["kind"] for i in irr]) == (2, ["few_refs", "num_persons_mismatch"])


def _write(p: Path, data: bytes) -> str:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p.name


def test_jsonl_loader_keeps_irregular_rows(tmp_path: Path) -> None:
    root = tmp_path / "d"
    for name in ("gt.png", "r1.png", "r2.png", "r3.png", "r4.png", "r5.png"):
        _write(root / name, png_bytes((len(name), 0, 0)))
    box = [0, 0, 4, 4]
    recs = [
        {"id": "np", "subset": "p2", "num_persons": 3, "prompt": "x", "gt": "gt.png", "refs": ["r1.png", "r2.png"],
         "boxes": [box, box]},
        {"id": "boxes", "subset": "p1", "prompt": "x", "gt": "gt.png", "refs": ["r1.png"], "boxes": [box, box, box]},
        {"id": "five", "subset": "p3", "num_persons": 5, "prompt": "x", "gt": "gt.png",
         "refs": ["r1.png", "r2.png", "r3.png", "r4.png", "r5.png"], "boxes": [box] * 5},
        {"id": "p2x3", "subset": "p2", "num_persons": 2, "prompt": "x", "gt": "gt.png",
         "refs": ["r1.png", "r2.png", "r3.png"], "boxes": [box]},
        {"id": "ok", "subset": "p1", "prompt": "x", "gt": "gt.png", "refs": ["r1.png"], "boxes": [box]},
    ]
    (root / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    loaded = open_bench(root / "bench.jsonl")
    assert loaded.invalid == ()
    got = {c.id: (c.subset, c.num_persons, len(c.refs), len(c.boxes), _kinds(c)) for c in loaded.bench.cases}
    assert got == {
        "np": ("p2", 2, 2, 2, ["num_persons_mismatch"]),
        "boxes": ("p1", 1, 1, 1, ["box_count"]),
        "five": ("p3", 4, 4, 4, ["extra_refs", "num_persons_mismatch", "box_count"]),  # 5 boxes -> first 4
        "p2x3": ("p2", 2, 2, 0, ["extra_refs", "box_count"]),
        "ok": ("p1", 1, 1, 1, []),
    }
    assert loaded.bench.cases[0].meta["num_persons_declared"] == 3


def test_parquet_loader_keeps_irregular_hf_rows(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")

    def img(c: int) -> Image.Image:
        return Image.open(io.BytesIO(png_bytes((c, 0, 0))))

    rows = [  # the four kinds of row the real dataset holds that the loaders used to refuse
        {"ID": "a", "GT": img(1), "input_images": [img(2), img(3)], "prompt": "a", "task_type": "t",
         "bboxes": "[[0, 0, 4, 4], [5, 0, 9, 4]]", "subset": "p2", "num_persons": 3},
        {"ID": "b", "GT": img(4), "input_images": [img(5)], "prompt": "b", "task_type": "t",
         "bboxes": "[[0, 0, 4, 4], [5, 0, 9, 4]]", "subset": "p1", "num_persons": 1},
        {"ID": "c", "GT": img(6), "input_images": [img(k) for k in range(7, 12)], "prompt": "c", "task_type": "t",
         "bboxes": "[[0, 0, 4, 4]]", "subset": "p3", "num_persons": 5},
        {"ID": "d", "GT": img(12), "input_images": [img(13), img(14), img(15)], "prompt": "d", "task_type": "t",
         "bboxes": "[[0, 0, 4, 4], [5, 0, 9, 4], [10, 0, 14, 4]]", "subset": "p3", "num_persons": 3},
    ]
    pq = tmp_path / "x.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(pq))
    loaded = open_bench(pq, cache_dir=tmp_path / "c")
    assert loaded.invalid == ()
    got = [(c.id, c.subset, c.num_persons, len(c.refs), len(c.boxes), _kinds(c)) for c in loaded.bench.cases]
    assert got == [
        ("0001", "p2", 2, 2, 2, ["num_persons_mismatch"]),
        ("0002", "p1", 1, 1, 1, ["box_count"]),
        ("num_4_0003", "p3", 4, 4, 0, ["extra_refs", "num_persons_mismatch", "box_count"]),
        ("num_3_0004", "p3", 3, 3, 3, []),
    ]


def test_official_folder_loader_keeps_irregular_folders(tmp_path: Path) -> None:
    folders = {"num_4_0102": 5, "0007": 2}
    for name, nrefs in folders.items():
        d = tmp_path / name
        meta: dict[str, Any] = {"prompt": name}
        if name == "0007":  # our export block declaring 3 persons for a two-reference p2 case
            meta["mbench"] = {"id": "c7", "subset": "p2", "num_persons": 3, "boxes": [[0, 0, 4, 4]]}
        _write(d / "meta.json", json.dumps(meta).encode())
        _write(d / "ori.jpg", jpeg_bytes((1, 2, 3)))
        for k in range(nrefs):
            _write(d / f"ref_{k}.jpg", jpeg_bytes((k, k, k)))
    bench, _ = import_official(tmp_path)
    got = [(c.id, c.subset, c.num_persons, [p.name for p in c.refs], len(c.boxes), _kinds(c)) for c in bench.cases]
    assert got == [
        ("c7", "p2", 2, ["ref_0.jpg", "ref_1.jpg"], 0, ["num_persons_mismatch", "box_count"]),
        ("num_4_0102", "p3", 4, ["ref_0.jpg", "ref_1.jpg", "ref_2.jpg", "ref_3.jpg"], 0, ["extra_refs"]),
    ]
    assert load_bench(tmp_path).cases[1].meta["irregular"][0]["detail"].startswith("5 reference images")

