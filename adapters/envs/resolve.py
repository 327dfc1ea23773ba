"""Maintainer script: resolve ``NAME.in`` (top-level pins) into the shipped lock ``NAME.txt`` (every package, exact).

Run with an interpreter of the spec's Python version (3.10; 3.9 for id-patch), on linux x86_64, with PyPI:

    python3.10 adapters/envs/resolve.py instantid uno ...

It calls ``pip install --dry-run --ignore-installed --report`` (pip >= 23; nothing is installed) and writes
``name==version`` for everything pip would install, sorted, with a header that says how. Standard library
only, so it runs from any interpreter that has pip.
"""
from __future__ import annotations

import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def lock_text(name: str, report: dict, python: str) -> str:
    pins = sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in report["install"])
    today = datetime.date.today().isoformat()
    head = [f"# Lock for 'mbench setup-env {name}': every package pinned, resolved from {name}.in on {today}",
            f"# with Python {python} on linux x86_64: pip install --dry-run --ignore-installed --report - -r {name}.in",
            "# Regenerate with: python adapters/envs/resolve.py " + name]
    return "\n".join(head + [f"{n}=={v}" for n, v in pins]) + "\n"


def resolve(name: str) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), "-r", str(HERE / f"{name}.in")], check=True)
        data = json.loads(report.read_text())
    out = HERE / f"{name}.txt"
    out.write_text(lock_text(name, data, f"{sys.version_info.major}.{sys.version_info.minor}"))
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(resolve(arg))
