"""Item 3 (crops): a deleted, damaged or swapped reference crop is recomputed, never replaced by the raw
reference; a cache that cannot be written still gives the same crops."""
from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest
from runner_fakes import FakeDetector, FakeWorld

import multiid_bench.data.refcrop as refcrop


def _prepare(world: FakeWorld, cache: Path):
    return refcrop.prepare_reference_crops(world.bench, detector=FakeDetector(), cache_dir=cache, jpeg_quality=None)


def _crop_bytes(bench) -> dict[str, list[bytes]]:
    return {c.id: [Path(r).read_bytes() for r in c.refs] for c in bench.cases}


def _crop_files(cache: Path) -> list[Path]:
    return sorted((cache / "data" / "refcrops").rglob("*.png"))


@pytest.mark.parametrize("damage", ["delete", "swap", "truncate"])
def test_a_bad_crop_is_recomputed_not_replaced_by_the_raw_reference(world: FakeWorld, tmp_path: Path, damage: str,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    first = _prepare(world, cache)
    expected = _crop_bytes(first)
    files = _crop_files(cache)
    assert len(files) >= 2
    if damage == "delete":
        files[0].unlink()
    elif damage == "swap":
        a, b = files[0].read_bytes(), files[1].read_bytes()
        files[0].write_bytes(b)
        files[1].write_bytes(a)
    else:
        files[0].write_bytes(files[0].read_bytes()[:20])
    with caplog.at_level(logging.WARNING):
        again = _prepare(world, cache)
    assert "failed its check" in caplog.text
    for case in again.cases:
        assert case.meta["ref_mode"] == "prepared_crops" and not case.meta["ref_crop_failures"]
        assert all(str(r).startswith(str(cache)) for r in case.refs)  # crops, never the raw references
    assert _crop_bytes(again) == expected


def test_an_unwritable_crop_cache_gives_the_same_crops(world: FakeWorld, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    expected = _crop_bytes(_prepare(world, tmp_path / "good"))

    def full(path: Path, data: bytes, **kw: object) -> None:
        if "mbench-refcrops-" not in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    monkeypatch.setattr(refcrop, "atomic_write_bytes", full)
    monkeypatch.setattr(refcrop, "atomic_write_text", lambda path, text: full(path, text.encode()))
    with caplog.at_level(logging.WARNING):
        out = _prepare(world, tmp_path / "full")
    assert "cannot write reference crops" in caplog.text
    assert _crop_bytes(out) == expected and all(not c.meta["ref_crop_failures"] for c in out.cases)
