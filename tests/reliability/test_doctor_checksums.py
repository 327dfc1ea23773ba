"""Item 8: ``mbench doctor`` checks the offline weights' checksums, not only that the files exist."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from multiid_bench.cli.main import cli
from multiid_bench.weights.doctor import run_checks
from multiid_bench.weights.store import env_override_name


def _mtcnn_copy(folder: Path) -> Path:
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("facenet-pytorch is not installed")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    folder.mkdir()
    for name in ("pnet.pt", "rnet.pt", "onet.pt"):
        shutil.copy(data / name, folder / name)
    return folder


def test_doctor_finds_a_weight_file_of_the_right_size_but_wrong_bytes(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _mtcnn_copy(tmp_path / "mtcnn")
    monkeypatch.setenv(env_override_name("mtcnn-facenet-pytorch"), str(folder))
    before = run_checks(str(tmp_path / "cache"), [], "offline")["profiles"]["offline"]
    assert not before["corrupt_weights"]
    data = bytearray((folder / "rnet.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes: an existence (or size) check cannot tell
    (folder / "rnet.pt").write_bytes(bytes(data))
    after = run_checks(str(tmp_path / "cache"), [], "offline")
    offline = after["profiles"]["offline"]
    assert not after["ready"] and not offline["ready"]
    assert len(offline["corrupt_weights"]) == 1 and "rnet.pt" in offline["corrupt_weights"][0]
    res = CliRunner().invoke(cli, ["doctor", "--profile", "offline", "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 1 and "rnet.pt: checksum mismatch" in res.output
