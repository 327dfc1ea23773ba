"""OmniContext (``OmniGen2/OmniContext``) as a bench: in-context generation cases judged by a VLM.

The dataset (read by OmniContext's own scripts with ``datasets.load_dataset(..., split="train")``, see
``omnicontext/inference.py`` and ``test_omnicontext_score.py`` of VectorSpaceLab/OmniGen2 @ 0f72fa9) has one
row per case with the columns ``key`` (str), ``task_type`` (str), ``instruction`` (str),
``instruction_language`` (str, ``en``...) and ``input_images`` (a list of images, stored in parquet as
``{bytes, path}`` structs). Task types (the dataset's names): ``single_character``, ``single_object``,
``multi_character``, ``multi_object``, ``multi_character_object``, ``scene_character``, ``scene_object``,
``scene_character_object``.

``--bench`` accepts ``omnicontext`` (= ``OmniGen2/OmniContext``), the hub id (``@revision`` pins one), a local
snapshot folder or parquet file with those columns, a ``save_to_disk`` folder, or an exported folder holding
``omnicontext.jsonl`` (what :func:`load_omnicontext` materialises: the image bytes exactly as stored plus one
JSON record per case; :func:`export_omnicontext` writes one). ``--subset`` takes task types, the groups
``single``/``multiple``/``scene``, or the preset ``paper`` (the WithAnyone paper's Table 1b: the
single-character subset).

A case maps onto :class:`~multiid_bench.data.case.Case` with ``prompt`` = the instruction, ``refs`` = the input
images (in dataset order), no GT, ``num_persons`` = number of input images, and ``meta`` holding
``bench="omnicontext"``, ``task_type``, ``key`` and ``instruction_language``. Case ids are
``<task_type>__<key>`` (keys are unique within a task type, as OmniContext's output layout
``fullset/<task_type>/<key>.png`` requires).
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from multiid_bench.errors import BadInputError, MissingDataError

__all__ = [
    "BENCH_ALIAS",
    "COLUMNS",
    "GROUPS",
    "HUB_ID",
    "MANIFEST_NAME",
    "PRESETS",
    "SUBSET_NAMES",
    "TASK_TYPES",
    "export_omnicontext",
    "is_omnicontext_spec",
    "load_omnicontext",
    "resolve_subsets",
]

log = logging.getLogger(__name__)

HUB_ID = "OmniGen2/OmniContext"
BENCH_ALIAS = "omnicontext"
MANIFEST_NAME = "omnicontext.jsonl"
MATERIALISE_VERSION = "1"
COLUMNS = ("key", "task_type", "instruction", "instruction_language", "input_images")
TASK_TYPES: tuple[str, ...] = (
    "single_character", "single_object",
    "multi_character", "multi_object", "multi_character_object",
    "scene_character", "scene_object", "scene_character_object",
)
#: OmniContext's three task groups (its paper's SINGLE / MULTIPLE / SCENE).
GROUPS: Mapping[str, tuple[str, ...]] = {
    "single": TASK_TYPES[:2], "multiple": TASK_TYPES[2:5], "scene": TASK_TYPES[5:],
}
#: Named selections. ``paper``: WithAnyone Table 1b ("OmniContext Single Character Subset").
PRESETS: Mapping[str, tuple[str, ...]] = {"paper": ("single_character",)}
SUBSET_NAMES: tuple[str, ...] = (*TASK_TYPES, *GROUPS, *PRESETS)
_MAX_INPUTS = 4  # Case holds at most 4 references
_HUB_RE = re.compile(r"^omnigen2/omnicontext(@[\w./-]+)?$", re.IGNORECASE)


def resolve_subsets(names: Iterable[str]) -> tuple[str, ...]:
    """Task types selected by ``--subset`` names (task types, groups, presets), sorted, no duplicates.

    Raises:
        BadInputError: an unknown name (lists the known ones).

    Example:
        >>> resolve_subsets(["paper"])
        ('single_character',)
        >>> resolve_subsets(["single", "scene_object"])
        ('scene_object', 'single_character', 'single_object')
    """
    out: set[str] = set()
    for name in names:
        if name in PRESETS:
            out.update(PRESETS[name])
        elif name in GROUPS:
            out.update(GROUPS[name])
        elif name in TASK_TYPES:
            out.add(name)
        else:
            raise BadInputError(f"unknown OmniContext subset {name!r}; use a task type ({', '.join(TASK_TYPES)}), "
                                f"a group ({', '.join(GROUPS)}) or a preset ({', '.join(PRESETS)})")
    return tuple(sorted(out))


def _has_omnicontext_columns(names: Iterable[str]) -> bool:
    return {"task_type", "instruction", "input_images", "key"} <= set(names)


def is_omnicontext_spec(spec: str | os.PathLike[str]) -> bool:
    """True for ``omnicontext``, the hub id, an exported folder, or local parquet/save_to_disk with its columns."""
    text = str(spec)
    if text.lower() == BENCH_ALIAS or text.lower().startswith(BENCH_ALIAS + "@") or _HUB_RE.match(text):
        return True
    p = Path(text).expanduser()
    if p.is_dir() and (p / MANIFEST_NAME).is_file():
        return True
    if p.is_file() and p.name == MANIFEST_NAME:
        return True
    try:
        if p.is_file() and p.suffix.lower() == ".parquet" or p.is_dir() and next(p.rglob("*.parquet"), None):
            import pyarrow.parquet as pq

            first = p if p.is_file() else sorted(p.rglob("*.parquet"))[0]
            return _has_omnicontext_columns(pq.ParquetFile(first).schema_arrow.names)
        if p.is_dir() and (p / "state.json").is_file():
            info = json.loads((p / "dataset_info.json").read_text()) if (p / "dataset_info.json").is_file() else {}
            return _has_omnicontext_columns((info.get("features") or {}).keys())
        if p.is_dir() and (p / "dataset_dict.json").is_file():
            for sub in p.iterdir():
                if (sub / "dataset_info.json").is_file():
                    info = json.loads((sub / "dataset_info.json").read_text())
                    return _has_omnicontext_columns((info.get("features") or {}).keys())
    except (OSError, ValueError, ImportError):
        return False
    return False


# ---------------------------------------------------------------------------------------------- rows


def _image_bytes(value: Any, where: str) -> bytes:
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        path = value.get("path")
        if path and os.path.isfile(path):
            return Path(path).read_bytes()
        raise ValueError(f"{where}: image has no bytes and its path {path!r} is not a readable file")
    if hasattr(value, "save"):  # a decoded PIL image (datasets without arrow formatting)
        buf = io.BytesIO()
        value.save(buf, format="PNG")
        return buf.getvalue()
    raise ValueError(f"{where}: expected an image ({{bytes, path}}), got {type(value).__name__}")


def _ext(data: bytes) -> str:
    from PIL import Image

    fmt = (Image.open(io.BytesIO(data)).format or "img").lower()
    return ".jpg" if fmt == "jpeg" else f".{fmt}"


def row_to_record(row: Mapping[str, Any], index: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One dataset row -> (manifest record, ``{relative path: image bytes}``).

    Raises:
        ValueError: a missing/empty column or an unreadable image (the message names row, key and field).
    """
    key = row.get("key")
    where = f"row {index} (key {key!r})"
    for col in ("key", "task_type", "instruction"):
        if not isinstance(row.get(col), str) or not row[col].strip():
            raise ValueError(f"{where}: column {col!r} must be a non-empty string, got {row.get(col)!r}")
    if "/" in row["key"] or "\\" in row["key"] or "/" in row["task_type"]:
        raise ValueError(f"{where}: key and task_type may not contain path separators")
    images = row.get("input_images")
    if not isinstance(images, (list, tuple)) or not images:
        raise ValueError(f"{where}: column 'input_images' must be a non-empty list of images")
    files: dict[str, bytes] = {}
    inputs = []
    for k, img in enumerate(images):
        data = _image_bytes(img, f"{where} input_images[{k}]")
        try:
            rel = f"images/{row['task_type']}/{row['key']}_{k}{_ext(data)}"
        except OSError as e:
            raise ValueError(f"{where} input_images[{k}]: not a recognised image ({e})") from None
        files[rel] = data
        inputs.append(rel)
    record = {"key": row["key"], "task_type": row["task_type"], "instruction": row["instruction"],
              "instruction_language": str(row.get("instruction_language") or "en"), "input_images": inputs}
    return record, files


def _materialise(rows: Iterable[Mapping[str, Any]], *, key: str, cache_dir: str | Path | None, source: str) -> Path:
    from multiid_bench.data._store import data_cache_dir, materialise_into

    folder = data_cache_dir(cache_dir, "omnicontext", key[:24])
    if materialise_into(folder, rows, row_to_record,
                        lambda row, i, e: {"source": source, "row": i, "key": row.get("key"), "reason": str(e)},
                        (ValueError,), manifest=MANIFEST_NAME,
                        complete={"source": source, "key": key, "version": MATERIALISE_VERSION}):
        log.info("materialised %s into %s", source, folder)
    return folder


# ---------------------------------------------------------------------------------------------- cases


def _cases_from_folder(folder: Path, bench_id: str) -> Any:
    """Read an exported/materialised folder into a BenchLoad (broken records become InvalidRecord).

    Every source is labelled ``OmniGen2/OmniContext`` (the leaderboard's bench id); ``manifest_sha256`` tells
    copies and subsets apart.
    """
    from multiid_bench.data._store import PathEscapeError, resolve_inside
    from multiid_bench.data.case import Bench, Case, subset_for_persons
    from multiid_bench.data.records import BenchLoad, InvalidRecord

    manifest = folder / MANIFEST_NAME
    cases, invalid, seen = [], [], set()
    for lineno, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        cid = None
        try:
            rec = json.loads(line)
            cid = f"{rec['task_type']}__{rec['key']}"
            inputs = rec["input_images"]
            if not isinstance(inputs, list) or not 1 <= len(inputs) <= _MAX_INPUTS:
                raise ValueError(f"'input_images' must list 1-{_MAX_INPUTS} images, got {inputs!r}")
            refs = []
            for k, rel in enumerate(inputs):
                p = resolve_inside(folder, rel)
                if not p.is_file():
                    raise ValueError(f"input_images[{k}]: file {rel!r} not found under {folder}")
                refs.append(p)
            if cid in seen:
                raise ValueError("duplicate (task_type, key)")
            seen.add(cid)
            meta = {"bench": BENCH_ALIAS, "task_type": rec["task_type"], "key": rec["key"],
                    "instruction_language": rec.get("instruction_language") or "en"}
            cases.append(Case(id=cid, subset=subset_for_persons(len(refs)), prompt=str(rec["instruction"]), gt=None,
                              refs=tuple(refs), num_persons=len(refs), meta=meta))
        except (ValueError, KeyError, TypeError, PathEscapeError, BadInputError) as e:
            invalid.append(InvalidRecord(str(manifest), cid, "<record>", f"{type(e).__name__}: {e}", lineno))
    if (folder / "invalid.jsonl").is_file():
        for line in (folder / "invalid.jsonl").read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                invalid.append(InvalidRecord(f"{d['source']} row {d['row']}", d.get("key"), "<row>", d["reason"]))
    if not cases and not invalid:
        raise BadInputError(f"{manifest} has no records")
    return BenchLoad(bench=Bench(id=bench_id, root=folder, cases=tuple(cases)), invalid=tuple(invalid),
                     kind="omnicontext", ref_mode="raw_refs", extra={"materialised": str(folder)})


def load_omnicontext(spec: str | os.PathLike[str] = BENCH_ALIAS, *, cache_dir: str | Path | None = None,
                     offline: bool | None = None) -> Any:
    """Load OmniContext from any accepted ``--bench`` form (see the module docstring) as a ``BenchLoad``.

    Raises:
        MissingDataError: the hub dataset is not reachable/cached (the message says how to get it).
        BadInputError: a local source without OmniContext's columns.
    """
    from multiid_bench.data import hub
    from multiid_bench.data._store import sha256_bytes, sha256_files

    text = str(spec)
    p = Path(text).expanduser()
    if p.is_file() and p.name == MANIFEST_NAME:
        p = p.parent
    if p.is_dir() and (p / MANIFEST_NAME).is_file():
        return _cases_from_folder(p, HUB_ID)
    if p.exists():
        import pyarrow.parquet as pq

        if p.is_dir() and ((p / "state.json").is_file() or (p / "dataset_dict.json").is_file()):
            import datasets

            ds = hub.train_split(datasets.load_from_disk(str(p)), str(p))
            _check_columns(ds.column_names, str(p))
            key = sha256_bytes(f"omnicontext|disk|{hub.dataset_key(ds, 'disk')}".encode())
            return _cases_from_folder(_materialise(hub.dataset_rows(ds), key=key, cache_dir=cache_dir, source=str(p)), HUB_ID)
        files = [p] if p.is_file() else sorted(p.rglob("*.parquet"))
        if not files:
            raise MissingDataError(f"{p}: no {MANIFEST_NAME} and no *.parquet; point --bench at an OmniContext snapshot")
        for f in files:
            _check_columns(pq.ParquetFile(f).schema_arrow.names, str(f))

        def rows() -> Iterator[dict[str, Any]]:
            for f in files:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=64):
                    yield from batch.to_pylist()

        base = p if p.is_dir() else p.parent
        key = sha256_bytes(f"omnicontext|parquet|{sha256_files(files, names_relative_to=base)}".encode())
        return _cases_from_folder(_materialise(rows(), key=key, cache_dir=cache_dir, source=str(p)), HUB_ID)
    return _load_hub(text, cache_dir=cache_dir, offline=offline)


def _check_columns(names: Sequence[str], source: str) -> None:
    missing = [c for c in COLUMNS if c not in names and c != "instruction_language"]
    if missing:
        raise BadInputError(f"{source}: not OmniContext data: missing column(s) {', '.join(missing)} "
                            f"(expected {', '.join(COLUMNS)}; found {', '.join(names)})")


def _load_hub(text: str, *, cache_dir: str | Path | None, offline: bool | None) -> Any:
    from multiid_bench.data import hub
    from multiid_bench.data._store import atomic_write_text, data_cache_dir, is_offline, sha256_bytes

    revision = text.partition("@")[2] if "@" in text else ""
    pointer = data_cache_dir(cache_dir, "omnicontext", "pointers", f"{revision or 'default'}.json")
    cached = None
    try:
        cached = pointer.parent.parent / json.loads(pointer.read_text())["folder"]
        cached = cached if (cached / "complete.json").is_file() else None
    except (OSError, ValueError, KeyError, TypeError):
        cached = None
    off = is_offline(offline)
    if off and cached is not None:
        return _cases_from_folder(cached, HUB_ID)
    try:
        import datasets

        with hub.hf_offline(off):
            ds = datasets.load_dataset(HUB_ID, split="train", revision=revision or None)
    except Exception as e:  # third-party boundary: many exception types mean "not available"
        if cached is not None:
            log.warning("could not reach %s (%s); using the copy at %s", HUB_ID, e, cached)
            return _cases_from_folder(cached, HUB_ID)
        raise MissingDataError(
            f"OmniContext ({HUB_ID}) could not be loaded{' offline' if off else ''} ({type(e).__name__}: {str(e)[:200]}). "
            f"Fix: run once with network access, or `hf download {HUB_ID} --repo-type dataset "
            "--local-dir DIR` elsewhere and pass --bench DIR.") from e
    _check_columns(ds.column_names, HUB_ID)
    key = sha256_bytes(f"omnicontext|hub|{hub.dataset_key(ds, 'hub')}".encode())
    folder = _materialise(hub.dataset_rows(ds), key=key, cache_dir=cache_dir, source=HUB_ID)
    atomic_write_text(pointer, json.dumps({"folder": folder.name, "revision": revision or None}))
    return _cases_from_folder(folder, HUB_ID)


def export_omnicontext(bench: Any, out_dir: str | os.PathLike[str]) -> Path:
    """Write an OmniContext bench as an exported folder (``omnicontext.jsonl`` + images), loadable by ``--bench``.

    Image bytes are copied as they are; only OmniContext cases (``meta["bench"] == "omnicontext"``) are written.
    """
    from multiid_bench.data._store import write_jsonl

    out = Path(out_dir)
    records = []
    for c in bench.cases:
        if c.meta.get("bench") != BENCH_ALIAS:
            continue
        tt, key = c.meta["task_type"], c.meta["key"]
        rels = []
        for k, ref in enumerate(c.refs):
            rel = f"images/{tt}/{key}_{k}{Path(ref).suffix}"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ref, out / rel)
            rels.append(rel)
        records.append({"key": key, "task_type": tt, "instruction": c.prompt,
                        "instruction_language": c.meta.get("instruction_language", "en"), "input_images": rels})
    write_jsonl(out / MANIFEST_NAME, records)
    return out
