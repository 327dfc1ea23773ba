"""Benchmark data: the Case record, loaders (hub, parquet, save_to_disk, JSONL, official folder),
reference-crop preparation and the offline demo bench.

Only the Case/Bench records are imported eagerly; loaders pull in ``datasets``/PIL on first use.
"""
from __future__ import annotations

from multiid_bench.data.case import SUBSETS, Bench, Box, Case, Subset, subset_for_persons
from multiid_bench.data.loaders import load_bench, open_bench
from multiid_bench.data.records import BenchLoad, InvalidRecord

__all__ = [
    "SUBSETS",
    "Bench",
    "BenchLoad",
    "Box",
    "Case",
    "InvalidRecord",
    "Subset",
    "build_demo_bench",
    "export_official",
    "import_official",
    "load_bench",
    "open_bench",
    "pad_reference",
    "prepare_reference_crops",
    "reference_info",
    "subset_for_persons",
]

_LAZY = {
    "build_demo_bench": "multiid_bench.data.demo",
    "export_official": "multiid_bench.data.official",
    "import_official": "multiid_bench.data.official",
    "pad_reference": "multiid_bench.data.refcrop",
    "prepare_reference_crops": "multiid_bench.data.refcrop",
    "reference_info": "multiid_bench.data.refcrop",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'multiid_bench.data' has no attribute {name!r}")
