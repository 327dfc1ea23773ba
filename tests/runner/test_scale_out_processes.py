"""Scale-out: two real processes (torchrun-style RANK/WORLD_SIZE, one run folder, running at the same time)
give the same rows and results as one process; the merge is the runner's own (docs/scaling.md)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VOLATILE = {"elapsed_s", "generation"}  # wall time, and the adapter's own timing record


def _cmd(out: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "multiid_bench.cli.main", "evaluate", "--model", "ground-truth", "--bench", "demo",
            "--profile", "offline", "--protocol", "strict", "--device", "cpu", "--offline", "--cache-dir", str(cache),
            "--out", str(out)]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env


def _diff(a: Any, b: Any, where: str = "") -> list[str]:
    """Paths where ``a`` and ``b`` differ: floats beyond 1e-4 relative (batched detection on another mix of images
    moves boxes at float rounding level), anything else exactly."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in a.keys() | b.keys() for d in _diff(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if abs(a - b) <= 1e-4 * max(1.0, abs(a)) else [f"{where}: {a} != {b}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def _rows(out: Path, cache: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for f in sorted(out.glob("cases*.jsonl")):
        text = f.read_text().replace(str(out), "<OUT>").replace(str(cache), "<CACHE>")  # run folder, prepared refs
        for line in text.splitlines():
            if line.strip():
                r = json.loads(line)
                rows[r["case_id"]] = {k: v for k, v in r.items() if k not in VOLATILE}
    return rows


@pytest.mark.slow
def test_two_torchrun_style_processes_give_the_rows_of_one(tmp_path: Path) -> None:
    one = subprocess.run(_cmd(tmp_path / "one", tmp_path / "cache1"), cwd=ROOT, env=_env(), capture_output=True,
                         text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    out = tmp_path / "two"
    procs = [subprocess.Popen(_cmd(out, tmp_path / "cache2"), cwd=ROOT, env=_env(RANK=str(r), WORLD_SIZE="2"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    assert len(list(out.glob("cases.shard-*-of-*.jsonl"))) == 2  # each rank wrote its own file
    rows1, rows2 = _rows(tmp_path / "one", tmp_path / "cache1"), _rows(out, tmp_path / "cache2")
    assert len(rows1) >= 4 and rows1.keys() == rows2.keys()
    assert not _diff(rows1, rows2)
    assert _diff({"x": 0.5}, {"x": 0.5002}) and _diff({"s": "ok"}, {"s": "failed"})  # the comparison has teeth
    r1 = json.loads((tmp_path / "one" / "results.json").read_text())
    r2 = json.loads((out / "results.json").read_text())  # merged by whichever rank finished last
    assert not _diff(r2["metrics"], r1["metrics"]) and r2["counts"] == r1["counts"]
