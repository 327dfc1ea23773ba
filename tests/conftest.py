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
