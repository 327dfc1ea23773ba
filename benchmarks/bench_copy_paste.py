"""Time compute_copy_paste on 100,000 triplets of 512-d float32 embeddings (target < 0.5 s on 2 cores).

Usage: python benchmarks/bench_copy_paste.py [--n 100000] [--dim 512] [--repeats 5]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from multiid_bench import compute_copy_paste


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    g, t, r = (rng.standard_normal((args.n, args.dim), dtype=np.float32) for _ in range(3))
    compute_copy_paste(g[:1000], t[:1000], r[:1000])  # warm-up
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        out = compute_copy_paste(g, t, r)
        times.append(time.perf_counter() - start)
    assert out.shape == (args.n,) and np.all(np.abs(out) <= 1.0)
    best, median = min(times), float(np.median(times))
    print(f"compute_copy_paste: {args.n} triplets x {args.dim}-d float32")
    print(f"  best {best:.3f} s, median {median:.3f} s ({args.n / best / 1e6:.2f} M triplets/s); target < 0.5 s")
    print(f"  {'PASS' if best < 0.5 else 'FAIL'}")


if __name__ == "__main__":
    main()
