"""Benchmark data: the Case record, loaders (hub, parquet, save_to_disk, JSONL, official folder), demo bench."""
from __future__ import annotations

from multiid_bench.data.case import SUBSETS, Bench, Box, Case, Subset, subset_for_persons

__all__ = ["SUBSETS", "Bench", "Box", "Case", "Subset", "subset_for_persons"]
