"""JSONL manifests, spec detection and record validation (case id + field + line in every message)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from multiid_bench.data.loaders import detect_spec_kind, load_bench, load_jsonl, open_bench
from multiid_bench.errors import BadInputError, MissingDataError


def _rewrite(path: Path, mutate) -> Path:
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    mutate(recs)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in recs))
    return path


def test_jsonl_relative_paths_load_into_cases(jsonl_bench: Path) -> None:
    bench = load_bench(str(jsonl_bench))
    root = jsonl_bench.parent
    assert bench.id == "mydata" and bench.root == root
    a, b = bench.cases
    assert (a.id, a.subset, a.num_persons, a.prompt) == ("a", "p1", 1, "a person")
    assert a.gt == root / "gt" / "a.png" and a.refs == (root / "refs" / "a1.png",)
    assert a.boxes == ((1.0, 2.0, 11.0, 12.0),)
    assert b.subset == "p2" and b.refs[1] == root / "refs" / "b2.png" and b.meta["identities"] == ["x", "y"]
    # the folder spec finds bench.jsonl; the hash ignores where the data folder lives
    assert load_bench(str(root)).manifest_sha256 == bench.manifest_sha256
    loaded = open_bench(jsonl_bench)
    assert loaded.kind == "jsonl" and loaded.invalid == () and loaded.ref_mode == "raw_refs"


def test_hash_is_location_independent(jsonl_bench: Path, tmp_path: Path) -> None:
    import shutil

    moved = tmp_path / "elsewhere" / "mydata"
    shutil.copytree(jsonl_bench.parent, moved)
    assert load_bench(moved / "bench.jsonl").manifest_sha256 == load_bench(jsonl_bench).manifest_sha256


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda r: r[1].pop("prompt"), r"line 2, case 'b': field 'prompt': missing"),
        (lambda r: r[1].update(refs=["../../outside.png", "refs/b2.png"]),
         r"line 2, case 'b': field 'refs\[0\]': path '\.\./\.\./outside\.png' escapes the data root"),
        (lambda r: r[0].update(gt="/etc/passwd"), r"line 1, case 'a': field 'gt': path '/etc/passwd' escapes"),
        (lambda r: r[0].update(refs=["refs/nope.png"]),
         r"line 1, case 'a': field 'refs\[0\]': file 'refs/nope.png' not found under the data root"),
        (lambda r: r[0].update(boxes=[[5, 5, 1, 9]]), r"line 1, case 'a': field 'boxes\[0\]'.*x2 <= x1"),
        (lambda r: r[0].update(boxes=[[1, 2, "x", 4]]), r"line 1, case 'a': field 'boxes\[0\]': must be"),
        (lambda r: r[1].update(subset="p5"), r"line 2, case 'b': field 'subset': must be one of p1, p2, p3"),
        (lambda r: r[0].update(num_persons="7"), r"line 1, case 'a': field 'num_persons': must be a positive integer"),
        (lambda r: r[0].update(refs=[]), r"line 1, case 'a': field 'refs': must be a non-empty list"),
        (lambda r: r[1].update(refs=["refs/b1.png"]), r"line 2, case 'b': field 'refs': subset p2 needs 2 reference"),
        (lambda r: r[0].update(id="x/y"), r"line 1, case 'x/y': field 'id'"),
        (lambda r: r[0].update(box=[1, 2, 3, 4]), r"line 1, case 'a': field 'box': unknown field"),
        (lambda r: r.__setitem__(1, '{"id": "b", "prompt": '), r"line 2, record without a usable id: field '<line>': not valid JSON"),
        (lambda r: r.append(dict(r[0])), r"line 3, case 'a': field 'id': duplicate id \(first on line 1\)"),
    ],
)
def test_broken_record_names_line_case_and_field(jsonl_bench: Path, mutate, pattern: str) -> None:
    _rewrite(jsonl_bench, mutate)
    with pytest.raises(BadInputError, match=pattern) as info:
        load_bench(jsonl_bench)
    assert info.value.exit_code == 2
    loaded = open_bench(jsonl_bench)  # non-strict: the other record survives, the broken one is data
    assert len(loaded.invalid) == 1 and len(loaded.bench) >= 1


def test_non_strict_keeps_valid_cases(jsonl_bench: Path) -> None:
    _rewrite(jsonl_bench, lambda r: r[0].pop("refs"))
    bench = load_bench(jsonl_bench, strict=False)
    assert [c.id for c in bench.cases] == ["b"]
    (rec,) = open_bench(jsonl_bench).invalid
    assert (rec.case_id, rec.field, rec.line) == ("a", "refs", 1)


def test_data_root_option(jsonl_bench: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifests" / "mine.jsonl"
    manifest.parent.mkdir()
    manifest.write_text(jsonl_bench.read_text())
    with pytest.raises(BadInputError, match="not found under the data root"):
        load_bench(manifest)
    bench = load_bench(manifest, data_root=jsonl_bench.parent)
    assert bench.id == "mine" and bench.cases[0].gt == jsonl_bench.parent / "gt" / "a.png"
    named = load_jsonl(manifest, data_root=jsonl_bench.parent, bench_id="my-bench").bench
    assert named.id == "my-bench" and named.manifest_sha256 == bench.manifest_sha256


def test_blank_lines_and_gt_may_be_null(jsonl_bench: Path) -> None:
    _rewrite(jsonl_bench, lambda r: (r[0].update(gt=None), r.insert(1, "")))
    bench = load_bench(jsonl_bench)
    assert bench.cases[0].gt is None and len(bench) == 2


def test_spec_detection(tmp_path: Path, jsonl_bench: Path) -> None:
    assert detect_spec_kind("demo") == "demo"
    assert detect_spec_kind("WithAnyone/MultiID-Bench") == "hub"
    assert detect_spec_kind("WithAnyone/MultiID-Bench@main") == "hub"
    assert detect_spec_kind(jsonl_bench) == "jsonl"
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    assert detect_spec_kind(tmp_path / "x.parquet") == "parquet"
    (tmp_path / "disk").mkdir()
    (tmp_path / "disk" / "state.json").write_text("{}")
    assert detect_spec_kind(tmp_path / "disk") == "disk"
    (tmp_path / "off" / "0001").mkdir(parents=True)
    (tmp_path / "off" / "0001" / "meta.json").write_text("{}")
    assert detect_spec_kind(tmp_path / "off") == "official"
    (tmp_path / "index.json").write_text("[]")
    with pytest.raises(BadInputError, match="neither a .jsonl manifest"):
        detect_spec_kind(tmp_path / "index.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match="has no bench.jsonl"):
        detect_spec_kind(tmp_path / "empty")
    with pytest.raises(MissingDataError, match="not 'demo', not an existing file") as info:
        load_bench(str(tmp_path / "no" / "such" / "file.jsonl"))
    assert info.value.exit_code == 3


def test_documented_manifest_example_loads(tmp_path: Path, write_image) -> None:
    """The JSONL example in docs/data.md is a valid manifest."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "data.md"
    block = doc.read_text().split("```jsonl\n", 1)[1].split("```", 1)[0]
    records = [json.loads(x) for x in block.splitlines() if x.strip()]
    for rec in records:
        for rel in [rec["gt"], *rec["refs"]]:
            write_image(tmp_path / rel, size=(400, 300))
    (tmp_path / "bench.jsonl").write_text(block)
    bench = load_bench(tmp_path)
    assert [(c.id, c.subset, c.num_persons) for c in bench.cases] == [("anna_beach", "p1", 1), ("duo_cafe", "p2", 2)]
    assert bench.cases[1].meta["identities"] == ["anna", "ben"]
