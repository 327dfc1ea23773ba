"""Local multi-process training on the CPU (gloo): the same code path as ``accelerate launch --cpu
--num_processes N``, for tests and debugging without GPUs (``env`` adds e.g. the FSDP launch environment of
``sharding.accelerate_env``). Split from ``train.py`` to keep that module readable; it sits above ``train.py``
(it starts processes that call ``train``), and ``train.py`` never imports it."""
from __future__ import annotations

from typing import Any

import torch

from .train import train
from .train_config import TrainConfig

__all__ = ["launch_cpu_processes"]


def _cpu_worker(rank: int, world_size: int, port: int, cfg_dict: dict[str, Any], stop_after: int | None,
                env: dict[str, str] | None = None) -> None:
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_WORLD_SIZE=str(world_size), **(env or {}))
    torch.set_num_threads(1)
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)  # a forked child must not reuse the parent's state
    train(TrainConfig.from_dict(cfg_dict), stop_after=stop_after)


def launch_cpu_processes(cfg: TrainConfig, world_size: int, *, port: int | None = None,
                         stop_after: int | None = None, start_method: str = "spawn",
                         env: dict[str, str] | None = None) -> None:
    """Run ``train(cfg)`` in ``world_size`` local CPU processes (gloo) — the same code path as
    ``accelerate launch --cpu --num_processes N``; used by the tests and for debugging without GPUs.
    ``env``: extra environment of each process, e.g. ``sharding.accelerate_env(fsdp.yaml)`` for FSDP."""
    import socket

    import torch.multiprocessing as mp

    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    mp.start_processes(_cpu_worker, args=(world_size, port, cfg.to_dict(), stop_after, env), nprocs=world_size,
                       join=True, start_method=start_method)
