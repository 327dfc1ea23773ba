"""OmniContext loader on a small folder in the dataset's real layout (a datasets-written parquet snapshot)."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from multiid_bench.data.omnicontext import (
    export_omnicontext,
    is_omnicontext_spec,
    load_omnicontext,
    resolve_subsets,
)
from multiid_bench.errors import BadInputError


def _png(color: tuple[int, int, int], size: tuple[int, int] = (40, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 48), color).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


ROWS = [
    {"key": "c001", "task_type": "single_character", "instruction": "The man from image 1 reads a book.",
     "instruction_language": "en", "input_images": [_jpeg((200, 10, 10))]},
    {"key": "o007", "task_type": "multi_object", "instruction": "Put the cup in image 1 next to the lamp in image 2.",
     "instruction_language": "en", "input_images": [_png((0, 90, 0)), _png((0, 0, 90))]},
    {"key": "s003", "task_type": "scene_character", "instruction": "The woman in image 1 stands in the room of image 2.",
     "instruction_language": "en", "input_images": [_png((90, 90, 0)), _jpeg((10, 10, 10))]},
    {"key": "bad1", "task_type": "single_object", "instruction": "Nothing to see.",
     "instruction_language": "en", "input_images": []},
]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``huggingface-cli download``-style snapshot: ``data/train-00000-of-00001.parquet`` written by datasets."""
    import datasets

    features = datasets.Features({
        "key": datasets.Value("string"), "task_type": datasets.Value("string"),
        "instruction": datasets.Value("string"), "instruction_language": datasets.Value("string"),
        "input_images": datasets.Sequence(datasets.Image()),
    })
    rows = {k: [r[k] for r in ROWS] for k in ROWS[0]}
    rows["input_images"] = [[{"bytes": b, "path": None} for b in imgs] for imgs in rows["input_images"]]
    ds = datasets.Dataset.from_dict(rows, features=features)
    root = tmp_path_factory.mktemp("omnicontext_snap")
    (root / "data").mkdir()
    ds.to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root


def test_snapshot_loads_with_task_types_and_exact_image_bytes(snapshot: Path, tmp_path: Path) -> None:
    assert is_omnicontext_spec(snapshot)
    loaded = load_omnicontext(snapshot, cache_dir=tmp_path)
    cases = {c.id: c for c in loaded.bench.cases}
    assert sorted(cases) == ["multi_object__o007", "scene_character__s003", "single_character__c001"]
    for row in ROWS[:3]:
        c = cases[f"{row['task_type']}__{row['key']}"]
        assert c.prompt == row["instruction"]
        assert c.gt is None
        assert [p.read_bytes() for p in c.refs] == row["input_images"]  # stored bytes, no re-encode
        assert c.num_persons == len(row["input_images"])
        assert dict(c.meta) == {"bench": "omnicontext", "task_type": row["task_type"], "key": row["key"],
                                "instruction_language": "en"}
    assert cases["single_character__c001"].refs[0].suffix == ".jpg"
    assert cases["multi_object__o007"].refs[0].suffix == ".png"
    assert loaded.kind == "omnicontext" and loaded.ref_mode == "raw_refs"
    # the empty row is reported, not dropped
    assert len(loaded.invalid) == 1 and loaded.invalid[0].case_id == "bad1"
    assert "input_images" in loaded.invalid[0].reason


def test_second_load_reads_the_materialised_folder(snapshot: Path, tmp_path: Path) -> None:
    a = load_omnicontext(snapshot, cache_dir=tmp_path)
    b = load_omnicontext(snapshot, cache_dir=tmp_path)
    assert a.extra["materialised"] == b.extra["materialised"]
    assert a.bench.manifest_sha256 == b.bench.manifest_sha256


def test_export_roundtrip(snapshot: Path, tmp_path: Path) -> None:
    loaded = load_omnicontext(snapshot, cache_dir=tmp_path / "cache")
    out = export_omnicontext(loaded.bench, tmp_path / "export")
    assert is_omnicontext_spec(out)
    again = load_omnicontext(out)
    assert [(c.id, c.prompt, [p.read_bytes() for p in c.refs]) for c in again.bench.cases] == \
        [(c.id, c.prompt, [p.read_bytes() for p in c.refs]) for c in loaded.bench.cases]


def test_subset_names_and_paper_preset(snapshot: Path, tmp_path: Path) -> None:
    assert resolve_subsets(["paper"]) == ("single_character",)
    assert resolve_subsets(["multiple"]) == ("multi_character", "multi_character_object", "multi_object")
    with pytest.raises(BadInputError, match="unknown OmniContext subset 'p1'"):
        resolve_subsets(["p1"])
    bench = load_omnicontext(snapshot, cache_dir=tmp_path).bench
    chosen = [c.id for c in bench.cases if c.meta["task_type"] in resolve_subsets(["paper"])]
    assert chosen == ["single_character__c001"]


def test_multiid_parquet_is_not_omnicontext(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"ID": ["1"], "prompt": ["x"], "subset": ["p1"]}), tmp_path / "m.parquet")
    assert not is_omnicontext_spec(tmp_path / "m.parquet")
    with pytest.raises(BadInputError, match="missing column"):
        load_omnicontext(tmp_path / "m.parquet", cache_dir=tmp_path)


def test_broken_exported_record_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(_png((1, 2, 3)))
    lines = [{"key": "a", "task_type": "single_object", "instruction": "x", "input_images": ["images/a.png"]},
             {"key": "b", "task_type": "single_object", "instruction": "y", "input_images": ["images/missing.png"]}]
    (tmp_path / "omnicontext.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    loaded = load_omnicontext(tmp_path)
    assert [c.id for c in loaded.bench.cases] == ["single_object__a"]
    (bad,) = loaded.invalid
    assert bad.line == 2 and bad.case_id == "single_object__b" and "missing.png" in bad.reason


def test_bench_spec_resolution(snapshot: Path, tmp_path: Path) -> None:
    from multiid_bench.data.loaders import detect_spec_kind, open_bench

    assert detect_spec_kind("omnicontext") == "omnicontext"
    assert detect_spec_kind("OmniGen2/OmniContext@abc123") == "omnicontext"
    assert detect_spec_kind(snapshot) == "omnicontext"
    assert detect_spec_kind("WithAnyone/MultiID-Bench") == "hub"
    loaded = open_bench(snapshot, cache_dir=tmp_path)
    assert loaded.kind == "omnicontext" and len(loaded.bench) == 3


def test_subset_selection_through_run_config(snapshot: Path, tmp_path: Path) -> None:
    from multiid_bench.errors import ConfigError
    from multiid_bench.runner.config import RunConfig

    cfg = RunConfig(model="x", bench=str(snapshot), subsets=("paper",))
    assert cfg.subsets == ("single_character",)
    assert RunConfig(model="x", subsets=("scene", "p1")).subsets == ("p1", "scene_character", "scene_character_object",
                                                                      "scene_object")
    with pytest.raises(ConfigError, match="single_character"):
        RunConfig(model="x", subsets=("single_person",))
    bench = load_omnicontext(snapshot, cache_dir=tmp_path).bench
    assert [c.id for c in bench.select(cfg.subsets).cases] == ["single_character__c001"]
    assert [c.id for c in bench.select(("multi_object", "scene_character")).cases] == \
        ["multi_object__o007", "scene_character__s003"]
    assert RunConfig(model="x").fingerprint() == RunConfig(model="x", judge=None).fingerprint()
    assert RunConfig(model="x").fingerprint() != RunConfig(model="x", judge={"prompts": "face-identity"}).fingerprint()


def test_face_only_adapters_skip_object_and_scene_tasks(snapshot: Path, tmp_path: Path) -> None:
    from multiid_bench.adapters import get_adapter

    cases = {c.meta["task_type"]: c for c in load_omnicontext(snapshot, cache_dir=tmp_path).bench.cases}
    face_only, general = get_adapter("uniportrait"), get_adapter("dummy")
    assert face_only.capabilities.face_references_only and not general.capabilities.face_references_only
    assert face_only.not_applicable_reason(cases["single_character"]) is None
    assert "object or scene inputs" in face_only.not_applicable_reason(cases["multi_object"])
    assert general.not_applicable_reason(cases["multi_object"]) is None
    assert general.not_applicable_reason(cases["scene_character"]) is None


def test_images_in_omnicontext_result_layout_are_found(snapshot: Path, tmp_path: Path) -> None:
    from multiid_bench.adapters.folder import find_image

    case = next(c for c in load_omnicontext(snapshot, cache_dir=tmp_path).bench.cases if c.meta["key"] == "o007")
    fullset = tmp_path / "results" / "MyModel" / "fullset"
    (fullset / "multi_object").mkdir(parents=True)
    (fullset / "multi_object" / "o007.png").write_bytes(_png((5, 5, 5)))
    path, layout, _ = find_image(fullset, case)
    assert (path, layout) == (fullset / "multi_object" / "o007.png", "omnicontext")


def test_every_source_is_labelled_with_the_hub_id(snapshot: Path, tmp_path: Path) -> None:
    loaded = load_omnicontext(snapshot, cache_dir=tmp_path)
    exported = load_omnicontext(export_omnicontext(loaded.bench, tmp_path / "mine"))
    assert loaded.bench.id == exported.bench.id == "OmniGen2/OmniContext"


def test_save_to_disk_folder(tmp_path: Path) -> None:
    import datasets

    features = datasets.Features({
        "key": datasets.Value("string"), "task_type": datasets.Value("string"),
        "instruction": datasets.Value("string"), "instruction_language": datasets.Value("string"),
        "input_images": datasets.Sequence(datasets.Image()),
    })
    row = ROWS[1]
    ds = datasets.Dataset.from_dict({**{k: [row[k]] for k in row if k != "input_images"},
                                     "input_images": [[{"bytes": b, "path": None} for b in row["input_images"]]]},
                                    features=features)
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "disk"))
    assert is_omnicontext_spec(tmp_path / "disk")
    loaded = load_omnicontext(tmp_path / "disk", cache_dir=tmp_path / "cache")
    (case,) = loaded.bench.cases
    assert case.id == "multi_object__o007" and [p.read_bytes() for p in case.refs] == row["input_images"]


def test_hub_offline_without_a_copy_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from multiid_bench.errors import MissingDataError

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(MissingDataError, match="hf download OmniGen2/OmniContext"):
        load_omnicontext("omnicontext", cache_dir=tmp_path / "cache", offline=True)


def test_hub_load_is_materialised_and_reused_offline(snapshot: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(snapshot / "data" / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "hf"))
    calls = []

    def fake_load(repo: str, split: str, revision: str | None = None, **kw: object) -> object:
        calls.append((repo, split, revision))
        return ds

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    first = load_omnicontext("omnicontext@v1", cache_dir=tmp_path / "cache", offline=False)
    assert calls == [("OmniGen2/OmniContext", "train", "v1")] and len(first.bench) == 3

    def no_network(*a: object, **k: object) -> object:
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", no_network)
    again = load_omnicontext("OmniGen2/OmniContext@v1", cache_dir=tmp_path / "cache", offline=True)
    assert again.bench.manifest_sha256 == first.bench.manifest_sha256
