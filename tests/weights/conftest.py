"""Fixtures: a local HTTP server on 127.0.0.1, a fake Hugging Face Hub, a clean environment."""
from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass


@pytest.fixture()
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(folder served, base URL) of a throwaway HTTP server bound to 127.0.0.1 only."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in ("MBENCH_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "MBENCH_HOME", "XDG_CACHE_HOME", "HF_HOME",
              "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT", "MBENCH_REQUIRE_PINNED"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))



class FakeHub:
    """A minimal Hub on 127.0.0.1: ``HEAD/GET /<repo>/resolve/<rev>/<path>`` with the headers
    ``huggingface_hub`` reads (X-Repo-Commit, ETag = LFS sha256 or git oid, Content-Length), and an
    ``HfApi``-like ``get_paths_info`` / ``repo_info`` over the same files."""

    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}  # repo -> {"commit", "branches", "files": {path: (bytes, lfs)}}
        self.url = ""
        self.requests: list[str] = []

    def add(self, repo: str, commit: str, files: dict[str, tuple[bytes, bool]], branch: str = "main") -> None:
        self.repos[repo] = {"commit": commit, "branch": branch, "files": files}

    # -- HfApi-like --------------------------------------------------------------------------------
    def repo_info(self, repo_id: str, revision: str | None = None, repo_type: str | None = None):
        from types import SimpleNamespace

        return SimpleNamespace(sha=self.repos[repo_id]["commit"])

    def get_paths_info(self, repo_id: str, paths, *, revision=None, repo_type=None, **_):
        from huggingface_hub.hf_api import RepoFile

        repo = self.repos[repo_id]
        out = []
        for p in [paths] if isinstance(paths, str) else paths:
            if p in repo["files"]:
                data, lfs = repo["files"][p]
                kw = {"path": p, "size": len(data), "oid": git_oid(data)}
                if lfs:
                    kw["lfs"] = {"size": len(data), "oid": hashlib.sha256(data).hexdigest(), "pointerSize": 130}
                out.append(RepoFile(**kw))
        return out


def git_oid(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


@pytest.fixture()
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A FakeHub served over HTTP; ``HF_ENDPOINT`` points at it and ``HF_HUB_CACHE`` at ``tmp_path/hf``."""
    hub = FakeHub()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, body: bool) -> None:
            hub.requests.append(f"{self.command} {self.path}")
            parts = self.path.split("/resolve/", 1)
            repo = parts[0].strip("/")
            rev, _, path = parts[1].partition("/") if len(parts) == 2 else ("", "", "")
            entry = hub.repos.get(repo)
            if entry is None or rev not in (entry["commit"], entry["branch"]) or path not in entry["files"]:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data, lfs = entry["files"][path]
            etag = hashlib.sha256(data).hexdigest() if lfs else git_oid(data)
            self.send_response(200)
            self.send_header("X-Repo-Commit", entry["commit"])
            self.send_header("ETag", f'"{etag}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(False)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(True)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)  # the suite sets HF_HUB_OFFLINE=1 before hf_hub is imported
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
