"""The evaluation runner: generated images -> faces -> per-case rows -> ``results.json``.

Typical use (what ``mbench evaluate`` does)::

    from multiid_bench.runner import RunConfig, run_evaluation
    from multiid_bench.runner.sources import AdapterSource
    from multiid_bench.adapters import get_adapter

    cfg = RunConfig(model="ground-truth", bench="demo", profile="offline", protocol="strict")
    outcome = run_evaluation(cfg, "runs/gt", AdapterSource(get_adapter("ground-truth"), "runs/gt", ...))

Importing this package imports no torch; models load inside :func:`run_evaluation`.
"""
from __future__ import annotations

from multiid_bench.runner.config import PROTOCOLS, RunConfig
from multiid_bench.runner.finalize import finalize, plan_complete
from multiid_bench.runner.evaluation import RunOutcome, run_evaluation
from multiid_bench.runner.shard import Shard, case_shard, parse_shard, resolve_shard

__all__ = [
    "PROTOCOLS",
    "RunConfig",
    "RunOutcome",
    "Shard",
    "case_shard",
    "finalize",
    "parse_shard",
    "plan_complete",
    "resolve_shard",
    "run_evaluation",
]
