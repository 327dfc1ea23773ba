"""Time ``mbench --help`` and ``mbench --version`` in fresh processes (target < 2 s each).

Usage: python benchmarks/bench_cli_help.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time


def _time(cmd: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    exe = shutil.which("mbench")
    base = [exe] if exe else [sys.executable, "-m", "multiid_bench.cli.main"]
    for flag in ("--help", "--version"):
        best = _time(base + [flag], args.repeats)
        print(f"mbench {flag}: best of {args.repeats}: {best:.3f} s  ({'PASS' if best < 2.0 else 'FAIL'}, target < 2 s)")


if __name__ == "__main__":
    main()
