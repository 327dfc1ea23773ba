"""Suite-wide settings: no network, and every cache under a per-session temporary folder."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep tests off the user's cache and off the network (HF hub lookups fail fast instead of hanging)."""
    home = tmp_path_factory.mktemp("mbench_home")
    os.environ["MBENCH_HOME"] = str(home)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def hf_dataset_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """``lay(repo_id, folder, files)``: put ``folder``'s files into a fresh Hugging Face cache as a downloaded
    dataset snapshot (the real layout: ``datasets--USER--NAME/refs/main`` + ``snapshots/<commit>/``), so
    ``hf://USER/NAME`` resolves offline through ``huggingface_hub`` itself. Returns the cache folder."""
    import shutil
    from pathlib import Path

    from huggingface_hub import constants  # the submodule: huggingface_hub's own names load lazily

    cache = tmp_path_factory.mktemp("hf-cache")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit = "0123456789abcdef0123456789abcdef01234567"

    def lay(repo_id: str, folder: Path, files: tuple[str, ...]) -> Path:
        repo = cache / ("datasets--" + repo_id.replace("/", "--"))
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(commit)
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True)
        for name in files:
            shutil.copyfile(Path(folder) / name, snapshot / name)
        return cache

    return lay
