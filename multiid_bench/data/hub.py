"""Hugging Face-schema sources (hub id, parquet, ``save_to_disk``) materialised once into image files.

A hub id is read through the Hugging Face cache (a parquet snapshot at a pinned commit, see
:func:`load_hub`), so a machine or cluster that mirrors an HF cache works offline.

Schema (eval-protocol §1.1): ``ID`` str, ``GT`` image, ``input_images`` list of images, ``prompt`` str,
``bboxes`` JSON string (or list) of ``[x1, y1, x2, y2]`` in GT pixels, ``subset`` p1/p2/p3, ``num_persons``.

Why materialise: the runner works on paths (decode once, hash the bytes, cache by content). Image bytes are
written exactly as stored in the dataset (no re-encode), into ``<cache>/data/hf/<data hash>/``, together with
a canonical ``bench.jsonl``, so a second load reads only that folder. Case ids are the official basenames
(``0001``; ``num_3_0123`` for p3, from the 1-based global row index, spec §1.2-1.3), so an official
evaluation folder of the same data imports with the same ids.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator

from multiid_bench.data._store import (
    data_cache_dir,
    materialise_into,
    is_offline,
    sha256_bytes,
    sha256_files,
)
from multiid_bench.data.case import SUBSETS
from multiid_bench.data.records import BenchLoad, InvalidRecord, RecordError, load_jsonl
from multiid_bench.errors import BadInputError, MBenchError, MissingDataError

__all__ = [
    "HF_COLUMNS",
    "MATERIALISE_VERSION",
    "PINNED_REVISIONS",
    "dataset_key",
    "dataset_rows",
    "hf_offline",
    "hf_row_to_record",
    "load_disk",
    "load_hub",
    "load_parquet",
    "materialise_rows",
    "official_basename",
    "train_split",
]

log = logging.getLogger(__name__)

HF_COLUMNS = ("ID", "GT", "input_images", "prompt", "bboxes", "subset", "num_persons")
_REQUIRED = ("GT", "input_images", "prompt", "bboxes", "subset")
MATERIALISE_VERSION = 2  # bump when the materialised layout, ids or the set of rows kept change
_EXT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif"}
_BATCH = 16


def official_basename(index: int, subset: str, num_persons: int) -> str:
    """Folder/case name the official scripts give row ``index`` (0-based global row)."""
    n = f"{index + 1:04d}"
    if subset == "p3":
        return f"num_{3 if num_persons == 3 else 4}_{n}"
    return n


def _image_bytes(value: Any, field_name: str) -> bytes:
    if isinstance(value, dict):
        data = value.get("bytes")
        if data:
            return bytes(data)
        path = value.get("path")
        if path and os.path.isfile(path):
            return Path(path).read_bytes()
        raise RecordError(field_name, f"image has no bytes and its path {path!r} is not a readable file")
    raise RecordError(field_name, f"expected an image ({{bytes, path}}), got {type(value).__name__}")


def _image_ext(data: bytes, field_name: str) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        fmt = Image.open(io.BytesIO(data)).format or ""
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise RecordError(field_name, f"image bytes are not a recognised image ({e})") from None
    return _EXT.get(fmt, "." + fmt.lower() if fmt else ".img")


def _parse_bboxes(value: Any) -> list[list[float]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise RecordError("bboxes", f"not valid JSON ({e.msg}): {value[:80]!r}") from None
    if not isinstance(value, list):
        raise RecordError("bboxes", f"must be a JSON list of [x1, y1, x2, y2], got {value!r}")
    out = []
    for i, b in enumerate(value):
        if (not isinstance(b, (list, tuple)) or len(b) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)):
            raise RecordError(f"bboxes[{i}]", f"must be [x1, y1, x2, y2] numbers, got {b!r}")
        out.append([float(v) for v in b])
    return out


def hf_row_to_record(row: dict[str, Any], index: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Validate one HF-schema row; return its manifest record (relative paths) and the files to write.

    Raises:
        RecordError: naming the offending column.
    """
    subset = row.get("subset")
    if subset not in SUBSETS:
        raise RecordError("subset", f"must be one of {', '.join(SUBSETS)}, got {subset!r}")
    refs_in = row.get("input_images")
    if not isinstance(refs_in, list) or not refs_in:
        n_in = len(refs_in) if isinstance(refs_in, list) else refs_in
        raise RecordError("input_images", f"must hold at least one reference image, got {n_in!r}")
    n = row.get("num_persons")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
        raise RecordError("num_persons", f"must be an integer, got {n!r}")
    prompt = row.get("prompt")
    if not isinstance(prompt, str):
        raise RecordError("prompt", f"must be a string, got {prompt!r}")
    # counts that disagree (num_persons vs subset, boxes vs images, > 4 images) are kept as the official
    # conversion keeps them; records.regularise reduces and flags them when the record becomes a case
    boxes = _parse_bboxes(row.get("bboxes"))
    case_id = official_basename(index, subset, n if n is not None else len(refs_in))
    files: dict[str, bytes] = {}
    gt_rel = None
    if row.get("GT") is not None:
        data = _image_bytes(row["GT"], "GT")
        gt_rel = f"images/{case_id}/gt{_image_ext(data, 'GT')}"
        files[gt_rel] = data
    refs = []
    for k, v in enumerate(refs_in):
        data = _image_bytes(v, f"input_images[{k}]")
        rel = f"images/{case_id}/ref_{k}{_image_ext(data, f'input_images[{k}]')}"
        files[rel] = data
        refs.append(rel)
    meta = {"row": index, "official_basename": case_id}
    if row.get("ID") is not None:
        meta["hf_id"] = str(row["ID"])
    if row.get("task_type") is not None:
        meta["task_type"] = str(row["task_type"])
    record = {"id": case_id, "subset": subset, "prompt": prompt, "gt": gt_rel, "refs": refs,
              "boxes": boxes, "num_persons": n, "meta": meta}
    return record, files


def _check_columns(names: Iterable[str], source: str) -> None:
    missing = [c for c in _REQUIRED if c not in set(names)]
    if missing:
        raise BadInputError(
            f"{source} does not have the MultiID-Bench schema: missing column(s) {', '.join(missing)} "
            f"(found {', '.join(sorted(names))}). Expected {', '.join(HF_COLUMNS)}."
        )


def materialise_rows(
    rows: Iterable[dict[str, Any]], *, key: str, cache_dir: str | Path | None, bench_id: str, source: str,
    kind: str = "hub",
) -> BenchLoad:
    """Write rows to ``<cache>/data/hf/<key>/`` once (atomically), then load that folder's manifest."""
    folder = data_cache_dir(cache_dir, "hf", key[:24])
    if materialise_into(folder, rows, hf_row_to_record,
                        lambda row, i, e: InvalidRecord(f"{source} row {i}", _row_id(row, i), e.field,
                                                        e.reason).to_dict(),
                        (RecordError,), manifest="bench.jsonl",
                        complete={"key": key, "source": source, "version": MATERIALISE_VERSION}):
        log.info("materialised %s into %s", source, folder)
    return _load_materialised(folder, bench_id, kind)


def _row_id(row: dict[str, Any], index: int) -> str:
    try:
        return official_basename(index, str(row.get("subset")), int(row.get("num_persons") or 0))
    except (TypeError, ValueError):
        return f"{index + 1:04d}"


def _load_materialised(folder: Path, bench_id: str, kind: str = "hub") -> BenchLoad:
    loaded = load_jsonl(folder / "bench.jsonl", bench_id=bench_id) if _has_records(folder) else None
    invalid = tuple(
        InvalidRecord(d["source"], d["case_id"], d["field"], d["reason"], d.get("line"))
        for d in (json.loads(x) for x in (folder / "invalid.jsonl").read_text().splitlines() if x.strip())
    )
    if loaded is None:
        raise BadInputError(
            f"no valid case in the data materialised at {folder}:\n" + "\n".join(r.message for r in invalid[:10])
        )
    return BenchLoad(bench=loaded.bench, invalid=invalid + loaded.invalid, kind=kind, ref_mode=loaded.ref_mode,
                     extra={"materialised": str(folder)})


def _has_records(folder: Path) -> bool:
    return (folder / "bench.jsonl").stat().st_size > 0


def _key(*parts: str) -> str:
    return sha256_bytes("|".join((f"v{MATERIALISE_VERSION}", *parts)).encode())


# ------------------------------------------------------------------------------------- parquet


def load_parquet(path: Path, *, cache_dir: str | Path | None = None, kind: str = "parquet",
                 bench_id: str | None = None) -> BenchLoad:
    """A parquet file or a folder of them (e.g. a hub snapshot), read with pyarrow (no HF cache copy)."""
    import pyarrow.parquet as pq

    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    if not files:
        raise MissingDataError(f"no *.parquet file under {path}. Check --bench.")
    base = path if path.is_dir() else path.parent
    for f in files:
        _check_columns(pq.ParquetFile(f).schema_arrow.names, str(f))

    def rows() -> Iterator[dict[str, Any]]:
        for f in files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=_BATCH):
                yield from batch.to_pylist()

    key = _key("parquet", sha256_files(files, names_relative_to=base))
    return materialise_rows(rows(), key=key, cache_dir=cache_dir, bench_id=bench_id or path.stem, source=str(path),
                            kind=kind)


# ----------------------------------------------------------------------------------- datasets


def dataset_rows(ds: Any) -> Iterator[dict[str, Any]]:
    """The rows of a ``datasets.Dataset`` as plain dicts, read in arrow batches.

    Arrow formatting keeps image columns as ``{bytes, path}`` structs, so image bytes reach the
    materialiser exactly as stored (no decode and re-encode).
    """
    for table in ds.with_format("arrow").iter(batch_size=_BATCH):
        yield from table.to_pylist()


def dataset_key(ds: Any, kind: str) -> str:
    """A content key of a ``datasets.Dataset`` for its materialised copy (``kind`` names the source form).

    The sha256 of its arrow cache files when it has them (cheap, stable across loads), else of the
    table serialised as an arrow stream; either way another version of the data gets another key.
    """
    files = [Path(c["filename"]) for c in (ds.cache_files or [])]
    if files and all(f.is_file() for f in files):
        return _key(kind, sha256_files(files))
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, ds.data.table.schema) as writer:
        writer.write_table(ds.data.table)
    return _key(kind, sha256_bytes(sink.getvalue().to_pybytes()))


def train_split(obj: Any, source: str) -> Any:
    """The ``train`` split of a ``DatasetDict`` (or its only split); a plain ``Dataset`` as it is.

    Both MultiID-Bench and OmniContext publish one ``train`` split and their scripts read that one.

    Raises:
        BadInputError: several splits and none named ``train`` (``source`` names the folder).
    """
    if hasattr(obj, "keys") and not hasattr(obj, "features"):  # DatasetDict
        if "train" in obj:
            return obj["train"]
        if len(obj) == 1:
            return next(iter(obj.values()))
        raise BadInputError(f"{source} has splits {sorted(obj)}; the benchmark is read from 'train' (as its own scripts do). Save that split.")
    return obj


def load_disk(path: Path, *, cache_dir: str | Path | None = None) -> BenchLoad:
    """A ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` folder (memory-mapped, not copied)."""
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - a core dependency
        from multiid_bench.errors import MissingDependencyError

        raise MissingDependencyError("reading a save_to_disk folder needs `pip install datasets`") from e
    ds = train_split(datasets.load_from_disk(str(path)), str(path))
    _check_columns(ds.column_names, str(path))
    return materialise_rows(dataset_rows(ds), key=dataset_key(ds, "disk"), cache_dir=cache_dir,
                            bench_id=path.name, source=str(path), kind="disk")


@contextlib.contextmanager
def hf_offline(enabled: bool) -> Iterator[None]:
    """Make ``datasets``/``huggingface_hub`` use only their local cache (they read the env at import time)."""
    if not enabled:
        yield
        return
    import datasets.config as dcfg
    import huggingface_hub.constants as hcfg

    saved = (dcfg.HF_HUB_OFFLINE, hcfg.HF_HUB_OFFLINE)
    dcfg.HF_HUB_OFFLINE = hcfg.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        dcfg.HF_HUB_OFFLINE, hcfg.HF_HUB_OFFLINE = saved


#: Hub datasets pinned to a commit: ``load_hub(repo)`` without ``@revision`` reads that commit. ``None``: not
#: pinned yet (no network where this was written); ``main`` is then read, its commit recorded and a warning
#: logged. Fill it with the commit ``huggingface_hub.HfApi().dataset_info(repo).sha`` reports.
PINNED_REVISIONS: dict[str, str | None] = {"WithAnyone/MultiID-Bench": None}
#: What a benchmark snapshot needs: the parquet shards (the card and configs are small, kept for provenance).
SNAPSHOT_PATTERNS = ["*.parquet", "**/*.parquet", "README.md", "*.json"]


def _hub_snapshot(repo: str, revision: str, hf_cache: Path) -> Path | None:
    """The cached snapshot of a dataset repo at ``revision`` (a commit, or a branch via ``refs/``) with parquet."""
    repo_dir = hf_cache / f"datasets--{repo.replace('/', '--')}"
    commit = revision
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        try:
            commit = (repo_dir / "refs" / revision).read_text().strip()
        except OSError:
            return None
    folder = repo_dir / "snapshots" / commit
    return folder if folder.is_dir() and next(folder.rglob("*.parquet"), None) is not None else None


def _download_snapshot(repo: str, revision: str, hf_cache: Path) -> Path | None:
    """``snapshot_download`` of the parquet shards into the HF cache; None when the repo has none (or it fails)."""
    from huggingface_hub import snapshot_download

    folder = Path(snapshot_download(repo_id=repo, repo_type="dataset", revision=revision,
                                    allow_patterns=SNAPSHOT_PATTERNS, cache_dir=str(hf_cache),
                                    endpoint=os.environ.get("HF_ENDPOINT") or None))
    return folder if next(folder.rglob("*.parquet"), None) is not None else None


def _with_hub_provenance(loaded: BenchLoad, repo: str, revision: str, folder: Path | None) -> BenchLoad:
    import dataclasses

    commit = folder.name if folder is not None and re.fullmatch(r"[0-9a-f]{40}", folder.name) else None
    info = {"repo": repo, "revision": revision, "commit": commit, "pinned": bool(re.fullmatch(r"[0-9a-f]{40}", revision)),
            "snapshot": str(folder) if folder is not None else None}
    return dataclasses.replace(loaded, kind="hub", extra={**dict(loaded.extra), "hub": info})


def load_hub(
    repo_id: str,
    *,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
    hf_cache_dir: str | Path | None = None,
) -> BenchLoad:
    """A Hub dataset (``repo`` or ``repo@revision``) through the Hugging Face cache, materialised once.

    Order: the parquet snapshot in the HF cache at the pinned revision (:data:`PINNED_REVISIONS`, or the
    ``@revision`` given); online, ``snapshot_download(allow_patterns=parquet)`` into the HF cache, read with
    pyarrow (no second Arrow copy); a repo without parquet goes through ``datasets.load_dataset``. Offline,
    a cached snapshot or a copy materialised earlier is used. The repo, revision and commit are recorded in
    ``extra["hub"]``.

    Raises:
        MissingDataError: not available (offline with nothing cached, no network, unknown repo); the message
            says how to get it.
    """
    from multiid_bench.weights.hf import hf_hub_cache

    repo, _, given = repo_id.partition("@")
    revision = given or PINNED_REVISIONS.get(repo) or "main"
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        log.warning("dataset %s is read at %r, not at a pinned commit; the commit used is recorded in the results",
                    repo, revision)
    hf_cache = Path(hf_cache_dir) if hf_cache_dir else hf_hub_cache()
    off = is_offline(offline)
    pointer = data_cache_dir(cache_dir, "hf", "pointers", f"{repo.replace('/', '__')}@{given or 'default'}.json")
    snapshot = _hub_snapshot(repo, revision, hf_cache)
    if snapshot is None and not off:
        try:
            snapshot = _download_snapshot(repo, revision, hf_cache)
        except Exception as e:  # noqa: BLE001 - third-party boundary; datasets or a materialised copy may still do
            log.info("no parquet snapshot of %s@%s (%s: %s)", repo, revision, type(e).__name__, e)
    if snapshot is not None:
        loaded = load_parquet(snapshot, cache_dir=cache_dir, kind="hub", bench_id=repo)
        _write_pointer(pointer, loaded, repo, revision)
        return _with_hub_provenance(loaded, repo, revision, snapshot)
    cached = _pointer_folder(pointer)
    if off and cached is not None:
        return _load_materialised(cached, repo)
    try:
        import datasets
    except ImportError as e:  # pragma: no cover
        from multiid_bench.errors import MissingDependencyError

        raise MissingDependencyError("loading a hub dataset needs `pip install datasets`") from e
    try:
        with hf_offline(off):
            ds = datasets.load_dataset(repo, split="train", revision=given or PINNED_REVISIONS.get(repo) or None,
                                       cache_dir=str(hf_cache_dir) if hf_cache_dir else None)
    except MBenchError:
        raise
    except Exception as e:  # third-party boundary: many exception types mean "not available"
        if cached is not None:
            log.warning("could not reach %s (%s); using the copy materialised at %s", repo, e, cached)
            return _load_materialised(cached, repo)
        mode = "is not in the local cache and we are offline" if off else "could not be loaded"
        raise MissingDataError(
            f"Hugging Face dataset {repo!r} {mode} ({type(e).__name__}: {str(e)[:300]}). Fix: run once with "
            f"network access and without --offline/HF_HUB_OFFLINE (it is then kept in the Hugging Face cache, "
            f"{hf_cache}), copy a Hugging Face cache that holds it there (HF_HUB_CACHE), or download a snapshot "
            f"elsewhere (`hf download {repo} --repo-type dataset --local-dir DIR`) and pass --bench DIR."
        ) from e
    _check_columns(ds.column_names, repo)
    loaded = materialise_rows(dataset_rows(ds), key=dataset_key(ds, "hub"), cache_dir=cache_dir,
                              bench_id=repo, source=repo)
    _write_pointer(pointer, loaded, repo, given or None)
    return _with_hub_provenance(loaded, repo, revision, None)


def _write_pointer(pointer: Path, loaded: BenchLoad, repo: str, revision: str | None) -> None:
    from multiid_bench.data._store import atomic_write_text

    pointer.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(pointer, json.dumps({"folder": Path(loaded.extra["materialised"]).name, "repo": repo,
                                           "revision": revision}, sort_keys=True))


def _pointer_folder(pointer: Path) -> Path | None:
    try:
        folder = pointer.parent.parent / str(json.loads(pointer.read_text())["folder"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return folder if (folder / "complete.json").is_file() else None
