"""``import multiid_bench``: typed, discoverable, and cheap."""
from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import multiid_bench as mb

ROOT = Path(__file__).resolve().parents[2]


def test_dir_lists_the_public_api_and_no_helper_names() -> None:
    names = dir(mb)
    assert {"evaluate", "score", "generate", "load_run", "Run", "CaseInput", "compute_copy_paste",
            "__version__"} <= set(names)
    assert not {"Any", "annotations", "importlib", "TYPE_CHECKING"} & set(names)
    assert all(callable(getattr(mb, n)) for n in names if n not in ("__version__",) and n[0] != "_"
               and type(getattr(mb, n)).__name__ != "module")


def test_all_is_sorted_and_every_name_resolves() -> None:
    assert mb.__all__ == sorted(mb.__all__) and all(getattr(mb, n) is not None for n in mb.__all__)


def test_the_package_ships_py_typed() -> None:
    assert (Path(mb.__file__).parent / "py.typed").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in data["multiid_bench"]


def test_import_is_cheap_and_imports_no_numeric_stack() -> None:
    code = ("import sys, time, json; t = time.perf_counter(); import multiid_bench; dt = time.perf_counter() - t; "
            "print(json.dumps([dt, [m for m in ('numpy', 'scipy', 'pandas', 'torch', 'PIL') if m in sys.modules]]))")
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True).stdout) for _ in range(3)]
    assert all(heavy == [] for _, heavy in runs), runs
    assert min(dt for dt, _ in runs) < 0.2, runs
