"""Items 2-3: the feature cache is checked on every read and written on a best-effort basis."""
from __future__ import annotations

import errno
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from runner_fakes import FakeWorld, make_world, rows_of, run

import multiid_bench.runner.cache as cache_mod


def _scores(out: Path) -> dict[str, object]:
    return {cid: (r["status"], r["scores"], r["detections"]) for cid, r in rows_of(out).items()}


def _entries(cache: Path, kind: str) -> list[Path]:
    return sorted((cache / "features" / kind).rglob("*.emb" if kind == "emb" else "*.det"))


def _rewrite(path: Path, payload: bytes, **header_changes: object) -> None:
    """A well-formed entry (valid checksum) whose content is wrong in some other way."""
    head, _, _ = path.read_bytes().partition(b"\n")
    header = {**json.loads(head), **header_changes, "sha256": hashlib.sha256(payload).hexdigest()}
    path.write_bytes(json.dumps(header).encode() + b"\n" + payload)


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))


def _zero(path: Path) -> None:
    head, _, payload = path.read_bytes().partition(b"\n")
    path.write_bytes(head + b"\n" + bytes(len(payload)))


def _wrong_dim(path: Path) -> None:
    head, _, payload = path.read_bytes().partition(b"\n")
    shape = json.loads(head)["shape"]
    arr = np.frombuffer(payload, "<f4").reshape(shape)[:, :3].copy()
    _rewrite(path, arr.tobytes(), shape=list(arr.shape))


def _wrong_shape_json(path: Path) -> None:
    _rewrite(path, json.dumps({"faces": "not a list"}).encode())


def _shift_boxes(path: Path) -> None:
    head, _, payload = path.read_bytes().partition(b"\n")
    faces = json.loads(payload)
    for f in faces:
        f["box"] = [v + 5 for v in f["box"]]
    path.write_bytes(head + b"\n" + json.dumps(faces, sort_keys=True).encode())


@pytest.mark.parametrize("kind,damage", [("emb", _flip), ("emb", _zero), ("emb", _wrong_dim),
                                         ("det", _wrong_shape_json), ("det", _shift_boxes), ("det", _flip)])
def test_a_damaged_entry_is_recomputed_and_rewritten_never_used(tmp_path: Path, kind: str, damage,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    world = make_world(tmp_path / "bench", persons=(1, 2))
    cache = tmp_path / "cache"
    run(world, "ground-truth", tmp_path / "first", cache)
    expected = _scores(tmp_path / "first")
    entries = _entries(cache, kind)
    assert entries
    for p in entries:
        damage(p)
    calls = world.model.calls + world.detector.calls
    with caplog.at_level(logging.WARNING):
        run(world, "ground-truth", tmp_path / "second", cache)
    assert _scores(tmp_path / "second") == expected
    assert world.model.calls + world.detector.calls > calls  # recomputed, not read
    assert "failed its check" in caplog.text
    caplog.clear()
    before = world.model.calls + world.detector.calls
    run(world, "ground-truth", tmp_path / "third", cache)  # rewritten: the third run reads them back
    assert world.model.calls + world.detector.calls == before and "failed its check" not in caplog.text


def test_an_old_format_or_foreign_entry_is_a_miss(tmp_path: Path) -> None:
    c = cache_mod.FeatureCache(tmp_path)
    c.put_embeddings("k1", "abcd-raw", np.ones((1, 4), np.float32))
    path = tmp_path / "features" / "emb" / "k1" / "ab" / "abcd-raw.emb"
    (path.parent / "abcd-pad.emb").write_bytes(path.read_bytes())  # an entry copied under another view
    assert c.get_embeddings("k1", "abcd-pad") is None
    assert c.get_embeddings("k1", "abcd-raw", 4).shape == (1, 4)
    assert c.get_embeddings("k1", "abcd-raw", 512) is None  # a model of another dimension


def _unwritable(path: Path) -> None:
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


@pytest.mark.parametrize("how", ["root is a file", "disk full"])
def test_a_cache_that_cannot_be_written_costs_one_warning_not_the_run(world: FakeWorld, tmp_path: Path, how: str,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    run(world, "ground-truth", tmp_path / "reference", tmp_path / "good-cache")
    if how == "root is a file":
        (tmp_path / "blocker").write_text("a file where the cache folder should be")
        cache = tmp_path / "blocker" / "cache"
    else:
        monkeypatch.setattr(cache_mod, "atomic_write_bytes", lambda path, data, **kw: _unwritable(path))
        cache = tmp_path / "full-cache"
    with caplog.at_level(logging.WARNING):
        outcome = run(world, "ground-truth", tmp_path / "out", cache)
    assert outcome.complete and _scores(tmp_path / "out") == _scores(tmp_path / "reference")
    assert caplog.text.count("cannot write the feature cache") == 1
