"""Load test of ``mbench study serve``: N scripted raters at once on 127.0.0.1, every answer checked.

Creates a study from the given run folders (all cases every run has) in a temporary folder, invites the
raters, serves it in this process (uvicorn, loopback only) and lets each rater thread load every trial
(JSON and images) and submit complete ratings, ``--rounds`` times over (a later round overwrites the
earlier answers, as a rater revising would). Bounded: every request has a timeout and the whole run a
deadline. Then the database is compared with what was sent: nothing may be missing or different.

Prints the submit latency (p50 / p95 / max, ms, measured at the client) and exits 1 when an answer is lost.

Usage: python benchmarks/bench_study_load.py RUN RUN [RUN...] [--raters 10] [--rounds 4]
"""
from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path


def main() -> int:
    import httpx
    import numpy as np

    from multiid_bench.study.create import create_study
    from multiid_bench.study.criteria import CRITERION_IDS
    from multiid_bench.study.invite import invite_raters
    from multiid_bench.study.server import StudyServer

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders made by 'mbench evaluate' (two or more)")
    ap.add_argument("--raters", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=4, help="times each rater submits every trial")
    ap.add_argument("--deadline-s", type=float, default=300.0)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="mbench-study-load-") as tmp:
        study = Path(tmp) / "study"
        plan = create_study(args.runs, study, per_subset={"p1": None, "p2": None, "p3": None}, seed=0)
        n_trials, k = sum(plan.trials.values()), len(plan.runs)
        invitations = invite_raters(study, args.raters)
        sent: dict[tuple[str, int], dict] = {}
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        deadline = time.monotonic() + args.deadline_s

        with StudyServer(study) as server:
            def rater(token: str, seed: int) -> None:
                rng = random.Random(seed)
                with httpx.Client(base_url=server.url, timeout=30.0) as client:
                    try:
                        client.get(f"/r/{token}").raise_for_status()
                        for _ in range(args.rounds):
                            for n in range(1, n_trials + 1):
                                if time.monotonic() > deadline:
                                    raise TimeoutError("deadline passed")
                                trial = client.get(f"/api/{token}/trial/{n}").json()
                                for url in [trial["gt"], *trial["refs"], *(r["image"] for r in trial["results"])]:
                                    client.get(url).raise_for_status()
                                body = {"ratings": {str(s): {c: rng.randint(1, 5) for c in CRITERION_IDS}
                                                    for s in range(k)}}
                                start = time.perf_counter()
                                r = client.post(f"/api/{token}/trial/{n}", json=body)
                                took = time.perf_counter() - start
                                r.raise_for_status()
                                with lock:
                                    latencies.append(took)
                                    sent[(token, n)] = body["ratings"]
                    except Exception as e:  # reported below; the run fails
                        with lock:
                            errors.append(f"{token[:6]}: {e!r}")

            threads = [threading.Thread(target=rater, args=(inv.token, i)) for i, inv in enumerate(invitations)]
            wall = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join(max(1.0, deadline - time.monotonic()))
            wall = time.perf_counter() - wall

        # the database against what was sent (slot -> run through the recorded presentation order)
        from multiid_bench.study.invite import hash_token

        con = sqlite3.connect(study / "study.sqlite")
        lost = 0
        for inv in invitations:
            (rid,) = con.execute("SELECT id FROM raters WHERE token_sha256 = ?", (hash_token(inv.token),)).fetchone()
            for n in range(1, n_trials + 1):
                stored = {(slot, c): s for slot, c, s in con.execute(
                    "SELECT p.slot, g.criterion, g.stars FROM ratings g JOIN presentations p ON p.rater_id = "
                    "g.rater_id AND p.trial_id = g.trial_id AND p.run_id = g.run_id JOIN trials t ON t.id = "
                    "g.trial_id WHERE g.rater_id = ? AND t.position = ?", (rid, n - 1))}
                want = {(int(s), c): v for s, per in sent.get((inv.token, n), {}).items() for c, v in per.items()}
                lost += want != stored or not want
        con.close()
    ms = np.array(latencies) * 1000
    total = args.raters * args.rounds * n_trials
    print(f"{args.raters} raters x {args.rounds} rounds x {n_trials} trials ({k} results, {len(CRITERION_IDS)} "
          f"criteria): {len(ms)}/{total} submits in {wall:.1f} s")
    if len(ms):
        print(f"submit latency ms: p50 {np.percentile(ms, 50):.1f}  p95 {np.percentile(ms, 95):.1f}  max {ms.max():.1f}")
    print(f"trials whose stored answers differ from the last ones sent: {lost}; errors: {len(errors)}")
    for e in errors[:5]:
        print("  " + e)
    return 0 if lost == 0 and not errors and len(ms) == total else 1


if __name__ == "__main__":
    sys.exit(main())
