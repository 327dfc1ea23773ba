"""Face-pipeline fixtures: real photos shipped in installed packages, the real offline models, and a
weights manifest redirected to files the tests create (served from a 127.0.0.1 HTTP server)."""
from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def t1_path() -> Path:
    import insightface

    return Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"


@pytest.fixture(scope="session")
def t1(t1_path: Path) -> np.ndarray:
    from multiid_bench.images import load_rgb_array

    return load_rgb_array(t1_path)


@pytest.fixture(scope="session")
def mtcnn():
    import torch

    from multiid_bench.faces import load_detector

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    return load_detector("mtcnn", offline=True)


@pytest.fixture(scope="session")
def dlib_model():
    from multiid_bench.faces import load_face_model

    return load_face_model("dlib", offline=True)


@pytest.fixture(scope="session")
def t1_faces(mtcnn, t1):
    return mtcnn.detect([t1])[0]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class FakeHub:
    """Serves test-made weight files on 127.0.0.1 and writes a manifest that points at them."""

    def __init__(self, root: Path, base: str, manifest_dir: Path, cache: Path) -> None:
        self.root, self.base, self.manifest_dir, self.cache = root, base, manifest_dir, cache

    def publish(self, weight_id: str, name: str, data_path: Path, *, sha256: str | None = None) -> None:
        """Serve ``data_path`` as ``weight_id/name``; the manifest gets its real sha256 unless given."""
        target = self.root / weight_id / name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(data_path, target)
        digest = sha256 or hashlib.sha256(target.read_bytes()).hexdigest()
        (self.manifest_dir / f"{weight_id}.toml").write_text(
            f'[[weights]]\nid = "{weight_id}"\ndescription = "test"\nlicence = "test"\nused_by = ["tests"]\n'
            f'files = [{{ name = "{name}", sha256 = "{digest}", urls = ["{self.base}/{weight_id}/{name}"] }}]\n'
        )


@pytest.fixture()
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    import multiid_bench.weights.manifest as manifest

    root, mdir, cache = tmp_path / "served", tmp_path / "manifests", tmp_path / "cache"
    for d in (root, mdir, cache):
        d.mkdir()
    monkeypatch.setattr(manifest, "MANIFEST_DIR", mdir)
    for k in ("MBENCH_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(k, raising=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield FakeHub(root, f"http://127.0.0.1:{server.server_address[1]}", mdir, cache)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """The CI box is 2 shared cores: one intra-op thread avoids oversubscription stalls."""
    import torch

    torch.set_num_threads(1)
