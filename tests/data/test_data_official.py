"""Official evaluation folder: export -> import round trip, byte-exact JPEG copies, folders made upstream."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from data_fixtures import jpeg_bytes
from multiid_bench.data.loaders import load_bench, open_bench
from multiid_bench.data.official import export_official, import_official
from multiid_bench.errors import BadInputError


def test_round_trip(jsonl_bench: Path, tmp_path: Path) -> None:
    bench = load_bench(jsonl_bench)
    gen = tmp_path / "gen"
    gen.mkdir()
    Image.new("RGB", (24, 24), (90, 80, 70)).save(gen / "a.png")  # PNG -> encoded as JPEG q75
    (gen / "b.jpg").write_bytes(jpeg_bytes((5, 6, 7), (24, 24)))  # JPEG -> copied as is
    summary = export_official(bench, gen, tmp_path / "official")
    assert summary.exported == ("a", "b") and summary.missing_images == ()
    folder = tmp_path / "official"
    assert sorted(p.name for p in (folder / "b").iterdir()) == ["meta.json", "ori.jpg", "out.jpg", "ref_0.jpg", "ref_1.jpg"]
    assert (folder / "b" / "out.jpg").read_bytes() == (gen / "b.jpg").read_bytes()
    assert (folder / "a" / "out.jpg").read_bytes()[:3] == b"\xff\xd8\xff"
    assert json.loads((folder / "a" / "meta.json").read_text())["prompt"] == "a person"

    back, generated = import_official(folder)
    assert [c.id for c in back.cases] == ["a", "b"]
    for old, new in zip(bench.cases, back.cases):
        assert (new.prompt, new.subset, new.num_persons, new.boxes) == (old.prompt, old.subset, old.num_persons, old.boxes)
        assert len(new.refs) == len(old.refs) and new.gt == folder / old.id / "ori.jpg"
        assert new.meta["ref_mode"] == "raw_refs"  # exported raw references stay marked raw
    assert back.id == bench.id
    assert generated == {"a": folder / "a" / "out.jpg", "b": folder / "b" / "out.jpg"}
    with Image.open(back.cases[0].refs[0]) as im:  # PNG reference re-encoded at q75: colour survives
        assert max(abs(x - y) for x, y in zip(im.convert("RGB").getpixel((4, 4)), (1, 1, 1))) <= 2
    # the spec loader sees the same folder as an official bench
    assert open_bench(folder).kind == "official"


def test_missing_generated_images_are_listed(jsonl_bench: Path, tmp_path: Path) -> None:
    bench = load_bench(jsonl_bench)
    summary = export_official(bench, {"b": Image.new("RGB", (8, 8))}, tmp_path / "o")
    assert summary.exported == ("b",) and summary.missing_images == ("a",)
    _, generated = import_official(tmp_path / "o")
    assert list(generated) == ["b"]


def test_folder_written_by_official_scripts(tmp_path: Path) -> None:
    """No ``mbench`` block: ids from folder names, p3 from ``num_3_``, refs are prepared crops."""
    for name, nrefs in (("0001", 1), ("0007", 2), ("num_3_0101", 3)):
        d = tmp_path / name
        d.mkdir()
        (d / "meta.json").write_text(json.dumps({"prompt": f"prompt {name}", "seed": 42}))
        (d / "ori.jpg").write_bytes(jpeg_bytes((1, 2, 3)))
        (d / "out.jpg").write_bytes(jpeg_bytes((4, 5, 6)))
        for k in range(nrefs):
            (d / f"ref_{k}.jpg").write_bytes(jpeg_bytes((k, k, k)))
    bench, generated = import_official(tmp_path)
    assert [(c.id, c.subset, c.num_persons, len(c.refs)) for c in bench.cases] == [
        ("0001", "p1", 1, 1), ("0007", "p2", 2, 2), ("num_3_0101", "p3", 3, 3)]
    assert all(c.meta["ref_mode"] == "prepared_crops" for c in bench.cases)
    assert bench.cases[2].refs[2] == tmp_path / "num_3_0101" / "ref_2.jpg" and len(generated) == 3


def test_broken_case_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "0001").mkdir()
    (tmp_path / "0001" / "meta.json").write_text("{not json")
    (tmp_path / "0002").mkdir()
    (tmp_path / "0002" / "meta.json").write_text(json.dumps({"prompt": "x"}))
    with pytest.raises(BadInputError, match=r"0001, case '0001': field 'meta.json': unreadable JSON"):
        import_official(tmp_path)
    loaded = open_bench(tmp_path)
    assert loaded.bench.cases == ()
    assert [(r.case_id, r.field) for r in loaded.invalid] == [("0001", "meta.json"), ("0002", "ref_k.jpg")]


def test_export_needs_gt(jsonl_bench: Path, tmp_path: Path) -> None:
    lines = jsonl_bench.read_text().splitlines()
    rec = json.loads(lines[0])
    rec["gt"] = None
    jsonl_bench.write_text(json.dumps(rec) + "\n" + lines[1] + "\n")
    with pytest.raises(BadInputError, match=r"case 'a': field 'gt' is empty"):
        export_official(load_bench(jsonl_bench), None, tmp_path / "o")
