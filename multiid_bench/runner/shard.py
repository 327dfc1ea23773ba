"""Deterministic sharding by case id, for job arrays (``--shard i/n``) and torchrun/accelerate launches.

A case's shard depends only on its id (SHA-256 of the id, mod n), never on order, world size history or
batch size, so ``--shard 0/2`` + ``--shard 1/2`` cover the bench exactly once, and each shard appends to
its own rows file (no shared database to lock; names in :mod:`~multiid_bench.runner.run_folder`, which also
merges them on read); metrics are computed from rows only, so a merged run equals a single-process one.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, TypeVar

from multiid_bench.errors import ConfigError

__all__ = ["Shard", "case_shard", "parse_shard", "resolve_shard", "select_shard"]

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """This process's share: cases whose :func:`case_shard` equals ``index`` out of ``count``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(f"shard {self.index}/{self.count} is invalid: need n >= 1 and 0 <= i < n")

    @property
    def is_sharded(self) -> bool:
        return self.count > 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """Parse ``"i/n"`` (0-based i).

    Example:
        >>> parse_shard("1/4")
        Shard(index=1, count=4)
    """
    try:
        i_text, n_text = text.split("/")
        return Shard(int(i_text), int(n_text))
    except ValueError:
        raise ConfigError(f"--shard takes 'i/n' with 0 <= i < n (e.g. 0/2), got {text!r}") from None


def resolve_shard(flag: Shard | None, environ: Mapping[str, str] | None = None) -> Shard:
    """Combine ``--shard`` with a torchrun/accelerate launch (``RANK``/``WORLD_SIZE``).

    Under a launcher with world size w, rank r further splits shard i/n into shard ``i*w + r`` of ``n*w``:
    every (job, rank) pair gets a disjoint, deterministic share.

    Example:
        >>> resolve_shard(Shard(1, 2), {"RANK": "1", "WORLD_SIZE": "3"})
        Shard(index=4, count=6)
    """
    env = os.environ if environ is None else environ
    base = flag or Shard()
    world_text = env.get("WORLD_SIZE")
    if not world_text:
        return base
    try:
        world, rank = int(world_text), int(env.get("RANK", env.get("LOCAL_RANK", "0")))
    except ValueError:
        raise ConfigError(f"RANK/WORLD_SIZE must be integers, got RANK={env.get('RANK')!r} WORLD_SIZE={world_text!r}") from None
    if world <= 1:
        return base
    return Shard(base.index * world + rank, base.count * world)


def case_shard(case_id: str, count: int) -> int:
    """The shard (0..count-1) that owns ``case_id``: SHA-256 of the id, mod ``count``.

    Example:
        >>> case_shard("p1_0001", 1)
        0
        >>> case_shard("p1_0001", 4) == case_shard("p1_0001", 4)
        True
    """
    return int(hashlib.sha256(case_id.encode("utf-8")).hexdigest()[:16], 16) % count


def select_shard(items: Sequence[T], shard: Shard, key: Callable[[T], str]) -> list[T]:
    """The items this shard owns, in their original order."""
    if not shard.is_sharded:
        return list(items)
    return [it for it in items if case_shard(key(it), shard.count) == shard.index]
