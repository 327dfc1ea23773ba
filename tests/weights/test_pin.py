"""`mbench weights pin` against a fake Hub: commits, sizes and LFS sha256 written into the manifest text."""
from __future__ import annotations

import hashlib
from pathlib import Path

from click.testing import CliRunner

from multiid_bench.cli.main import cli
from multiid_bench.errors import CheckFailedError
from multiid_bench.weights.manifest import load_manifests
from multiid_bench.weights.pin import pin_manifests
from tests.weights.conftest import FakeHub

COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
BIG = b"lfs-file" * 1000
SMALL = b'{"a": 1}'

MANIFEST = '''# a comment that must survive
[[weights]]
id = "m"
description = "d"
licence = "MIT"
used_by = ["t"]
files = [
  { name = "model.safetensors", repo = "org/model", filename = "model.safetensors", revision = "main", sha256 = "", sha256_note = "upstream's only hash is the Hub LFS oid" },
  { name = "config.json", repo = "org/model", filename = "config.json", sha256 = "", sha256_note = "small git file" },
]

[[weights]]
id = "other"
description = "not on the Hub"
licence = "MIT"
used_by = ["t"]
files = [{ name = "x.bin", sha256 = "''' + "0" * 64 + '''", urls = ["https://example.org/x.bin"] }]
'''


def hub() -> FakeHub:
    h = FakeHub()
    h.add("org/model", COMMIT, {"model.safetensors": (BIG, True), "config.json": (SMALL, False)})
    return h


def test_pin_fills_commit_size_and_lfs_sha256(tmp_path: Path) -> None:
    (tmp_path / "t.toml").write_text(MANIFEST)
    changes = pin_manifests(hub(), manifest_dir=tmp_path)
    assert [(c.weight_id, c.name, c.revision, c.size) for c in changes] == [
        ("m", "model.safetensors", ("main", COMMIT), (0, len(BIG))),
        ("m", "config.json", ("main", COMMIT), (0, len(SMALL))),
    ]
    text = (tmp_path / "t.toml").read_text()
    assert text.startswith("# a comment that must survive\n")
    m = load_manifests([tmp_path])["m"]
    big, small = m.file("model.safetensors"), m.file("config.json")
    assert (big.revision, big.size, big.sha256) == (COMMIT, len(BIG), hashlib.sha256(BIG).hexdigest())
    assert big.sha256_note == f"Hub LFS sha256 at commit {COMMIT[:12]} (mbench weights pin)"
    assert (small.revision, small.size, small.sha256) == (COMMIT, len(SMALL), "")  # git file: checked by its oid
    assert load_manifests([tmp_path])["other"].files[0].urls == ("https://example.org/x.bin",)
    assert [c.changed for c in pin_manifests(hub(), manifest_dir=tmp_path)] == [False, False]  # idempotent


def test_pin_dry_run_writes_nothing_and_conflicts_are_reported(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "t.toml").write_text(MANIFEST)
    pin_manifests(hub(), manifest_dir=tmp_path, write=False)
    assert (tmp_path / "t.toml").read_text() == MANIFEST
    wrong = MANIFEST.replace('revision = "main", sha256 = ""', f'revision = "main", sha256 = "{"ab" * 32}"')
    (tmp_path / "t.toml").write_text(wrong)
    import multiid_bench.weights.pin as pin

    monkeypatch.setattr(pin, "_default_api", lambda: hub())
    res = CliRunner().invoke(cli, ["weights", "pin", "m", "--manifest-dir", str(tmp_path)])
    assert isinstance(res.exception, CheckFailedError), res.output
    assert f"manifest sha256 {'ab' * 32} != Hub LFS sha256 {hashlib.sha256(BIG).hexdigest()}" in str(res.exception)
    assert load_manifests([tmp_path])["m"].file("model.safetensors").sha256 == "ab" * 32  # never overwritten
