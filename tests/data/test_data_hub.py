"""HF-schema sources: parquet file/folder, save_to_disk, hub id (offline and a stubbed download)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from data_fixtures import hf_rows
from multiid_bench.data import hub
from multiid_bench.data.loaders import load_bench, open_bench
from multiid_bench.errors import BadInputError, MissingDataError

datasets = pytest.importorskip("datasets")


def _check_hf_bench(bench: Any) -> None:
    ids = [c.id for c in bench.cases]
    assert ids == ["0001", "0002", "num_3_0003"]  # official basenames from the 1-based global row
    p1, p2, p3 = bench.cases
    assert (p1.subset, p2.subset, p3.subset) == ("p1", "p2", "p3")
    assert (p1.num_persons, p2.num_persons, p3.num_persons) == (1, 2, 3)
    assert p2.prompt == "two" and p2.boxes == ((1.0, 2.0, 10.0, 12.0), (12.0, 2.0, 20.0, 12.0))
    assert len(p3.refs) == 3 and p3.meta["hf_id"] == "h3" and p3.meta["row"] == 2
    assert p1.gt is not None and p1.gt.suffix == ".png" and p1.gt.is_file()
    with Image.open(p1.gt) as im:
        assert im.size == (32, 24) and im.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    with Image.open(p3.refs[2]) as im:
        assert im.convert("RGB").getpixel((3, 3)) == (6, 0, 0)


def test_parquet_file_and_folder(hf_dataset: Any, tmp_path: Path) -> None:
    pq = tmp_path / "snap" / "data" / "train-00000-of-00001.parquet"
    pq.parent.mkdir(parents=True)
    hf_dataset.to_parquet(str(pq))
    cache = tmp_path / "cache"
    by_file = load_bench(pq, cache_dir=cache)
    _check_hf_bench(by_file)
    by_folder = load_bench(tmp_path / "snap", cache_dir=cache)
    _check_hf_bench(by_folder)
    assert by_file.manifest_sha256 == by_folder.manifest_sha256
    # materialised once: the bytes stored in the parquet are written unchanged
    import pyarrow.parquet as papq

    stored = papq.read_table(pq).column("GT")[0].as_py()["bytes"]
    assert by_file.cases[0].gt is not None and by_file.cases[0].gt.read_bytes() == stored
    assert str(by_file.cases[0].gt).startswith(str(cache / "data" / "hf"))


def test_save_to_disk_matches_parquet(hf_dataset: Any, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    hf_dataset.save_to_disk(str(disk))
    bench = load_bench(disk, cache_dir=tmp_path / "c")
    _check_hf_bench(bench)
    dd = tmp_path / "dd"
    datasets.DatasetDict({"train": hf_dataset}).save_to_disk(str(dd))
    assert load_bench(dd, cache_dir=tmp_path / "c").manifest_sha256 == bench.manifest_sha256
    pq = tmp_path / "x.parquet"
    hf_dataset.to_parquet(str(pq))
    assert load_bench(pq, cache_dir=tmp_path / "c").manifest_sha256 == bench.manifest_sha256


def test_materialised_once(hf_dataset: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pq = tmp_path / "x.parquet"
    hf_dataset.to_parquet(str(pq))
    first = load_bench(pq, cache_dir=tmp_path / "c")

    def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("rows re-materialised")

    monkeypatch.setattr(hub, "hf_row_to_record", boom)
    assert load_bench(pq, cache_dir=tmp_path / "c").manifest_sha256 == first.manifest_sha256


def test_broken_rows_name_case_and_field(tmp_path: Path) -> None:
    rows = hf_rows()
    rows[1]["bboxes"] = "[[1, 2, 10, 12]"  # truncated JSON
    rows[2]["bboxes"] = "[[0, 0, 5, 5]]"  # 1 box, 3 references: kept and flagged (tests/data/test_data_irregular.py)
    pq = tmp_path / "x.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(pq))
    with pytest.raises(BadInputError, match=r"row 1, case '0002': field 'bboxes': not valid JSON"):
        load_bench(pq, cache_dir=tmp_path / "c")
    loaded = open_bench(pq, cache_dir=tmp_path / "c")
    assert [c.id for c in loaded.bench.cases] == ["0001", "num_3_0003"] and loaded.kind == "parquet"
    assert [(r.case_id, r.field) for r in loaded.invalid] == [("0002", "bboxes")]


def test_missing_column_is_named(tmp_path: Path) -> None:
    rows = [{k: v for k, v in r.items() if k != "bboxes"} for r in hf_rows()]
    pq = tmp_path / "x.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(pq))
    with pytest.raises(BadInputError, match=r"missing column\(s\) bboxes"):
        load_bench(pq, cache_dir=tmp_path / "c")


def test_hub_offline_without_copy_is_missing_data(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match=r"'WithAnyone/MultiID-Bench' is not in the local cache and we are offline.*--bench DIR") as info:
        hub.load_hub("WithAnyone/MultiID-Bench", cache_dir=tmp_path / "c", offline=True, hf_cache_dir=tmp_path / "hf")
    assert info.value.exit_code == 3


def test_hub_offline_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBENCH_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("offline")))
    with pytest.raises(MissingDataError) as info:
        load_bench("WithAnyone/MultiID-Bench", cache_dir=tmp_path / "c")
    assert info.value.exit_code == 3


def test_hub_download_path_then_offline_reuse(hf_dataset: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake_load_dataset(name: str, split: str, revision: Any = None, cache_dir: Any = None) -> Any:
        calls.append((name, split, revision))
        return hf_dataset

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    bench = load_bench("WithAnyone/MultiID-Bench@abc123", cache_dir=tmp_path / "c", offline=False)
    assert calls == [("WithAnyone/MultiID-Bench", "train", "abc123")]
    assert bench.id == "WithAnyone/MultiID-Bench"
    _check_hf_bench(bench)
    again = load_bench("WithAnyone/MultiID-Bench@abc123", cache_dir=tmp_path / "c", offline=True)
    assert len(calls) == 1 and again.manifest_sha256 == bench.manifest_sha256
    pointer = next((tmp_path / "c" / "data" / "hf" / "pointers").glob("*.json"))
    assert json.loads(pointer.read_text())["revision"] == "abc123"


def test_image_path_column_without_bytes(tmp_path: Path) -> None:
    img = tmp_path / "gt.jpg"
    Image.new("RGB", (8, 8), (9, 9, 9)).save(img, format="JPEG")
    row = dict(hf_rows()[0], GT={"bytes": None, "path": str(img)}, input_images=[{"bytes": img.read_bytes(), "path": None}])
    record, files = hub.hf_row_to_record(row, 41)
    assert record["id"] == "0042" and record["gt"] == "images/0042/gt.jpg"
    assert files["images/0042/gt.jpg"] == img.read_bytes()
    with pytest.raises(hub.RecordError, match="must be an integer, got '3'"):
        hub.hf_row_to_record(dict(row, num_persons="3"), 0)
    with pytest.raises(hub.RecordError, match="not a recognised image"):
        hub.hf_row_to_record(dict(row, GT={"bytes": b"<html>", "path": None}), 0)


# ---- through the Hugging Face cache -------------------------------------------------------------------
COMMIT = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"


def _hf_dataset_tree(hf_cache: Path, hf_dataset: Any, commit: str = COMMIT, ref: str = "main") -> Path:
    """The real layout: datasets--org--name/{blobs/<sha256>, snapshots/<commit>/data/<shard> -> blob, refs/main}."""
    import hashlib
    import os

    repo_dir = hf_cache / "datasets--WithAnyone--MultiID-Bench"
    tmp = hf_cache / "shard.parquet"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    hf_dataset.to_parquet(str(tmp))
    blob = repo_dir / "blobs" / hashlib.sha256(tmp.read_bytes()).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    tmp.replace(blob)
    link = repo_dir / "snapshots" / commit / "data" / "train-00000-of-00001.parquet"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / ref).write_text(commit)
    return repo_dir


def test_hub_offline_from_a_cached_snapshot(hf_dataset: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    repo_dir = _hf_dataset_tree(tmp_path / "hf", hf_dataset)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: (_ for _ in ()).throw(AssertionError("no datasets")))
    loaded = open_bench("WithAnyone/MultiID-Bench", cache_dir=tmp_path / "c", offline=True)
    _check_hf_bench(loaded.bench)
    assert loaded.kind == "hub"
    assert loaded.extra["hub"] == {"repo": "WithAnyone/MultiID-Bench", "revision": "main", "commit": COMMIT,
                                   "pinned": False, "snapshot": str(repo_dir / "snapshots" / COMMIT)}
    # the shard is read where the HF cache keeps it: no second copy of the parquet anywhere else
    shard = (repo_dir / "snapshots" / COMMIT / "data" / "train-00000-of-00001.parquet").read_bytes()
    assert [p for p in (tmp_path / "c").rglob("*") if p.is_file() and p.read_bytes() == shard] == []


def test_hub_pinned_revision_wins_over_main(hf_dataset: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = "f" * 40
    _hf_dataset_tree(tmp_path / "hf", hf_dataset, commit=COMMIT, ref="pinned-only")
    _hf_dataset_tree(tmp_path / "hf", datasets.Dataset.from_list(hf_rows()[:1]), commit=other, ref="main")
    monkeypatch.setitem(hub.PINNED_REVISIONS, "WithAnyone/MultiID-Bench", COMMIT)
    loaded = hub.load_hub("WithAnyone/MultiID-Bench", cache_dir=tmp_path / "c", offline=True, hf_cache_dir=tmp_path / "hf")
    assert len(loaded.bench.cases) == 3 and loaded.extra["hub"]["commit"] == COMMIT and loaded.extra["hub"]["pinned"]
    main = hub.load_hub("WithAnyone/MultiID-Bench@main", cache_dir=tmp_path / "c", offline=True,
                        hf_cache_dir=tmp_path / "hf")
    assert len(main.bench.cases) == 1 and main.extra["hub"]["commit"] == other


def test_hub_online_downloads_a_parquet_snapshot_into_the_hf_cache(hf_dataset: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    seen: dict[str, Any] = {}

    def fake_snapshot_download(repo_id: str, **kw: Any) -> str:
        seen.update(kw, repo_id=repo_id)
        repo_dir = _hf_dataset_tree(Path(kw["cache_dir"]), hf_dataset)
        return str(repo_dir / "snapshots" / COMMIT)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setitem(hub.PINNED_REVISIONS, "WithAnyone/MultiID-Bench", COMMIT)
    loaded = hub.load_hub("WithAnyone/MultiID-Bench", cache_dir=tmp_path / "c", offline=False,
                          hf_cache_dir=tmp_path / "hf")
    _check_hf_bench(loaded.bench)
    assert (seen["repo_id"], seen["repo_type"], seen["revision"], seen["cache_dir"]) == (
        "WithAnyone/MultiID-Bench", "dataset", COMMIT, str(tmp_path / "hf"))
    assert "*.parquet" in seen["allow_patterns"]
