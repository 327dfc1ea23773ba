"""Turn a ``--bench`` spec into a :class:`~multiid_bench.data.case.Bench`, validating every record.

Accepted specs (``load_bench(spec)``):

* ``"demo"``: the offline demo bench built from photos that installed packages ship (``data/demo.py``).
* a Hugging Face dataset id such as ``"WithAnyone/MultiID-Bench"`` (``datasets.load_dataset``, split ``train``);
* a local parquet file, or a folder holding parquet files (e.g. an ``hf download`` snapshot);
* a ``Dataset.save_to_disk`` folder;
* a JSONL manifest (one case per line; the format for your own data, see ``docs/data.md``), or a folder
  holding ``bench.jsonl`` / ``manifest.jsonl``;
* an official evaluation folder (``<case>/out.jpg, ori.jpg, ref_k.jpg, meta.json``).

Hub, parquet and save_to_disk rows are written to image files once, in a cache folder keyed by the data's
hash (``data/hub.py``); the runner always gets paths.

This module only dispatches: the record types, the shared record checks and the JSONL format live in
``data/records.py`` (below every format loader), each other format in its own module.

Validation: a broken record never silently disappears. :func:`open_bench` returns the valid cases plus one
:class:`InvalidRecord` per broken record (case id, field, manifest line), so the runner can write it as a
failed case; :func:`load_bench` (``strict=True``) raises :class:`~multiid_bench.errors.BadInputError` with
those messages instead.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Literal

from multiid_bench.data._store import data_cache_dir
from multiid_bench.data.case import Bench
from multiid_bench.data.records import (  # re-exported: the record types' former home
    MANIFEST_NAMES,
    BenchLoad,
    InvalidRecord,
    RecordError,
    load_jsonl,
    record_to_case,
    regularise,
)
from multiid_bench.errors import BadInputError, MissingDataError

__all__ = [
    "MANIFEST_NAMES",
    "BenchLoad",
    "InvalidRecord",
    "RecordError",
    "SpecKind",
    "detect_spec_kind",
    "load_bench",
    "load_jsonl",
    "open_bench",
    "record_to_case",
    "regularise",
]

log = logging.getLogger(__name__)

SpecKind = Literal["demo", "hub", "parquet", "disk", "jsonl", "official", "omnicontext"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(@[\w./-]+)?$")


def detect_spec_kind(spec: str | Path) -> SpecKind:
    """Decide which loader reads ``spec`` (a path is looked at on disk; otherwise a hub id is expected).

    Raises:
        MissingDataError: a path-like spec that does not exist.
        BadInputError: an existing path of no recognised layout.
    """
    text = str(spec)
    if text == "demo":
        return "demo"
    from multiid_bench.data.omnicontext import is_omnicontext_spec

    if is_omnicontext_spec(text):  # 'omnicontext', OmniGen2/OmniContext, or local data in its layout
        return "omnicontext"
    p = Path(text).expanduser()
    if p.is_file():
        if p.suffix.lower() in (".jsonl", ".ndjson"):
            return "jsonl"
        if p.suffix.lower() == ".parquet":
            return "parquet"
        raise BadInputError(
            f"bench file {p} is neither a .jsonl manifest (one JSON object per line, see docs/data.md) "
            "nor a .parquet file"
        )
    if p.is_dir():
        if any((p / n).is_file() for n in MANIFEST_NAMES):
            return "jsonl"
        if (p / "state.json").is_file() or (p / "dataset_dict.json").is_file():
            return "disk"
        if next(p.rglob("*.parquet"), None) is not None:
            return "parquet"
        if any((d / "meta.json").is_file() for d in p.iterdir() if d.is_dir()):
            return "official"
        raise BadInputError(
            f"bench folder {p} has no bench.jsonl/manifest.jsonl, no save_to_disk files (state.json), "
            "no *.parquet and no official case folders (<case>/meta.json). Point --bench at one of those."
        )
    if _HUB_ID.match(text) and not text.startswith((".", "/", "~")):
        return "hub"
    raise MissingDataError(
        f"bench {text!r} is not 'demo', not an existing file or folder, and not a Hugging Face dataset id "
        "(owner/name). Check the path, or use --bench demo for the offline demo."
    )


def open_bench(
    spec: str | Path,
    *,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
    data_root: str | Path | None = None,
) -> BenchLoad:
    """Load ``spec`` and return valid cases plus every broken record (nothing is dropped silently)."""
    kind = detect_spec_kind(spec)
    if kind == "demo":
        from multiid_bench.data.demo import build_demo_bench

        return BenchLoad(bench=build_demo_bench(data_cache_dir(cache_dir, "demo")), kind="demo")
    if kind == "omnicontext":
        from multiid_bench.data.omnicontext import load_omnicontext

        return load_omnicontext(spec, cache_dir=cache_dir, offline=offline)
    if kind == "jsonl":
        p = Path(spec).expanduser()
        if p.is_dir():
            p = next(p / n for n in MANIFEST_NAMES if (p / n).is_file())
        return load_jsonl(p, data_root=data_root)
    if kind == "official":
        from multiid_bench.data.official import import_official_checked

        return import_official_checked(Path(spec).expanduser())
    from multiid_bench.data import hub

    if kind == "hub":
        return hub.load_hub(str(spec), cache_dir=cache_dir, offline=offline)
    if kind == "parquet":
        return hub.load_parquet(Path(spec).expanduser(), cache_dir=cache_dir)
    return hub.load_disk(Path(spec).expanduser(), cache_dir=cache_dir)


def load_bench(
    spec: str | Path,
    *,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
    data_root: str | Path | None = None,
    strict: bool = True,
) -> Bench:
    """Load a bench from any supported spec (see module docstring).

    Args:
        spec: ``"demo"``, a hub id, or a path (parquet, save_to_disk, JSONL, official folder).
        cache_dir: cache root (materialised hub rows, the demo); default ``$MBENCH_HOME`` etc.
        offline: never touch the network (default: ``MBENCH_OFFLINE`` / ``HF_HUB_OFFLINE``).
        data_root: JSONL only: folder that relative paths are resolved in (default: the manifest's folder).
        strict: raise on the first broken records; ``False`` logs them and keeps the valid cases
            (use :func:`open_bench` to get them as data).

    Raises:
        BadInputError: broken records (strict), naming the manifest line, case and field.
        MissingDataError: the data is not available (offline, unknown path, failed download).
    """
    loaded = open_bench(spec, cache_dir=cache_dir, offline=offline, data_root=data_root)
    if loaded.invalid:
        msgs = [r.message for r in loaded.invalid]
        if strict:
            more = f"\n... and {len(msgs) - 10} more" if len(msgs) > 10 else ""
            raise BadInputError(
                f"{len(msgs)} broken record(s) in bench {str(spec)!r}:\n" + "\n".join(msgs[:10]) + more
            )
        for m in msgs:
            log.warning("skipping broken record: %s", m)
    return loaded.bench
