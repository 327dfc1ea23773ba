"""Debian's headless Chromium for the browser checks of the HTML reports (``.ci/run`` installs it)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")


def require_chromium() -> None:
    """Skip, saying how to get it, when Chromium is not installed (the rest of the suite still runs)."""
    if not CHROMIUM.is_file():
        msg = f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium) to run the browser check"
        print(msg)
        pytest.skip(msg)


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium (no sandbox: the tests run as root) with ``args``; 120 s at most."""
    return subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          capture_output=True, text=True, timeout=120)
