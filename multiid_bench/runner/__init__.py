"""The evaluation runner: generated images -> faces -> per-case rows -> ``results.json``.

Use it through :mod:`multiid_bench.api` (``mb.evaluate``, ``mb.score``) or ``mbench evaluate``; the run
folder's files are :mod:`multiid_bench.runner.run_folder`'s. Importing this package imports no torch.
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
