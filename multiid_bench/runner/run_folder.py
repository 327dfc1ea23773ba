"""The run folder: the one module that knows its file names, its row and results formats, and how to read
them back (all shards merged).

Every writer (runner, ``mbench generate``) and every reader (finalize, leaderboard, report, compare,
correlate, the Python API) goes through here, so a sharded run is read exactly like a single-process one::

    DIR/run.json                       plan + resolved config (RUN_FILE)
    DIR/cases.jsonl                    one row per case, or DIR/cases.shard-I-of-N.jsonl per shard
    DIR/generations.jsonl              the adapter's records, or DIR/generations.shard-I-of-N.jsonl
    DIR/images/<case>.png              generated images (lossless)
    DIR/sessions.jsonl                 one line per process (work counters, scorer status)
    DIR/results.json                   the aggregate, validated against results.schema.json
    DIR/summary.md, DIR/summary.csv    exports of results.json
    DIR/generate.json                  ``mbench generate`` only: adapter, settings, seed, bench hash
    DIR/run.log                        tracebacks of the model's exceptions (file:line), one block per case
    DIR/replaced.jsonl, DIR/replaced-<UTC time>/   what ``--overwrite`` moved aside (never deleted)

Reading rule (rows and generation records alike): files are read in name order, a torn or unparsable
line is skipped with a warning, and the **last** row of a case id wins (a later row is a redo; resume
never writes a second row for a case, so in practice each id has one row). Row ids are unique by
construction: a bench record whose id repeats another case's gets a distinct row id
(:func:`unique_record_ids`), so a duplicated id can never hide another case's row.
"""
from __future__ import annotations

import json
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence, TypedDict

from multiid_bench.data.case import MAX_STEM_BYTES, case_file_stem  # re-exported: a case's stored file name
from multiid_bench.errors import BadInputError, ConfigError, IOFaultError, MissingDataError

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.runner.shard import Shard

__all__ = [
    "CaseRow", "Exclusion", "GENERATE_FILE", "IMAGES_DIR", "MAX_JSON_BYTES", "MAX_STEM_BYTES", "MISSING_FACES",
    "REPLACED_LOG", "RESULTS_FILE", "ROW_SCHEMA_VERSION", "ROW_STATUSES", "RUN_FILE", "RUN_LOG", "SCHEMA_PATH",
    "SCHEMA_VERSION", "SESSIONS_FILE", "LOCK_STEM", "append_row", "case_file_stem", "generation_files", "generations_file",
    "has_rows", "image_path", "is_run_file", "is_set_aside", "load_schema", "move_aside", "plan_ids", "read_generations", "read_json",
    "read_jsonl", "read_results", "read_rows", "read_run", "repair_tail", "results_path", "row_files",
    "row_shape_errors", "rows_file", "schema_errors", "unique_record_ids",
    "validate_results", "validate_row", "write_json",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ROW_SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("results.schema.json")
RUN_FILE = "run.json"
RESULTS_FILE = "results.json"
SESSIONS_FILE = "sessions.jsonl"
GENERATE_FILE = "generate.json"
#: ``overwrite=True`` / ``--overwrite`` moves a folder's old entries into ``replaced-<UTC time>/`` and logs it here.
REPLACED_PREFIX, REPLACED_LOG = "replaced-", "replaced.jsonl"
#: the writer locks (``runner/folder_lock.py``): never moved aside, never part of a run's content
LOCK_STEM = ".mbench-lock"
#: Tracebacks of a model's exceptions (one block per failed case), next to the rows that name them.
RUN_LOG = "run.log"
IMAGES_DIR = "images"
_ROWS, _GENERATIONS = "cases", "generations"
#: A row whose generated image was scored but shows fewer faces than persons (a model outcome, not a fault):
#: the paper protocol does what the official script does (a model that finds no face has no value for that
#: case; fewer faces: the mean over the matched pairs), the strict protocol scores each missing identity
#: ``strict_missing_score`` and counts it in ``face_failure_rate`` (docs/protocols.md).
MISSING_FACES = "missing_faces"
#: Every row status; ``counts`` in results.json has one count per status, and with ``pending`` they add up
#: to ``expected``.
ROW_STATUSES = ("ok", MISSING_FACES, "failed", "not_applicable")


#: One line of ``cases*.jsonl`` (row_schema 1; docs/results.md; ``$defs/case_row``). ``status``: ok |
#: missing_faces | failed | not_applicable; ``scores``: protocol -> face model -> case values; ``scores`` and ``general`` take any metric key.
CaseRow = TypedDict("CaseRow", {
    "row_schema": int, "case_id": str, "subset": str | None, "num_persons": int | None, "status": str,
    "reason": str | None, "notes": list[str], "seed": int | None, "generation": dict[str, Any] | None,
    "images": dict[str, Any], "detections": dict[str, Any], "scores": dict[str, dict[str, dict[str, Any]]],
    "general": dict[str, float | None], "elapsed_s": float}, total=False)
#: A case (or some of its metrics) a protocol leaves out of its averages, and why (``results.json: excluded``).
Exclusion = TypedDict("Exclusion", {"case_id": str, "metrics": list[str], "reason": str})


def _sharded(out: Path, stem: str, shard: "Shard | None") -> Path:
    if shard is None or shard.count <= 1:
        return Path(out) / f"{stem}.jsonl"
    width = max(3, len(str(shard.count)))
    return Path(out) / f"{stem}.shard-{shard.index:0{width}d}-of-{shard.count:0{width}d}.jsonl"


def _all(out: Path, stem: str) -> list[Path]:
    out = Path(out)
    return sorted(set(out.glob(f"{stem}.jsonl")) | set(out.glob(f"{stem}.shard-*-of-*.jsonl")))


def rows_file(out: Path, shard: "Shard | None" = None) -> Path:
    """Where this shard appends its per-case rows (``cases.jsonl`` when unsharded)."""
    return _sharded(out, _ROWS, shard)


def row_files(out: Path) -> list[Path]:
    """Every row file of a run folder (unsharded and all shards), sorted by name."""
    return _all(out, _ROWS)


def has_rows(out: Path) -> bool:
    return bool(row_files(out))


def generations_file(out: Path, shard: "Shard | None" = None) -> Path:
    return _sharded(out, _GENERATIONS, shard)


def generation_files(out: Path) -> list[Path]:
    return _all(out, _GENERATIONS)


def image_path(out: Path, case_id: str) -> Path:
    """``images/<case file stem>.png`` (long ids hashed: :func:`case_file_stem`)."""
    return Path(out) / IMAGES_DIR / f"{case_file_stem(case_id)}.png"


def is_set_aside(name: str) -> bool:
    """True for what ``--overwrite`` left in a folder: the ``replaced-*`` folders and their log."""
    return name.startswith(REPLACED_PREFIX) or name == REPLACED_LOG


def is_run_file(name: str) -> bool:
    """True for the name of a file a run folder owns (rows, records, results, summaries, logs)."""
    import re

    fixed = {RUN_FILE, RESULTS_FILE, SESSIONS_FILE, GENERATE_FILE, REPLACED_LOG, RUN_LOG, "summary.md", "summary.csv"}
    return name in fixed or re.fullmatch(rf"({_ROWS}|{_GENERATIONS})(\.shard-\d+-of-\d+)?\.jsonl", name) is not None


def results_path(path: str | Path) -> Path:
    """A run folder or a results file -> the results file; a clear error when there is none."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_FILE
    if not p.is_file():
        raise MissingDataError(f"no results file at {p}: pass a run folder that holds {RESULTS_FILE} "
                               "(written by 'mbench evaluate' or 'mbench score') or the path of the file itself")
    return p


def append_row(path: Path, row: Mapping[str, Any]) -> None:
    """Append one JSON line and make it durable before the next case starts (the file honours the umask)."""
    line = json.dumps(row, sort_keys=True, allow_nan=False) + "\n"
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:  # disk full, file too large, read-only: one line naming the file (exit 6)
        raise IOFaultError.from_os_error(e, "append to", path) from e


def repair_tail(path: Path) -> int:
    """Cut a torn last line (no trailing newline) left by a killed writer; returns the bytes removed."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with path.open("rb+") as f:
        f.truncate(keep)
    log.warning("removed a torn last line from %s (%d bytes); that case will be redone", path, len(data) - keep)
    return len(data) - keep


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of one file; torn or unparsable lines are skipped with a warning naming the line."""
    path = Path(path)
    if not path.is_file():
        return
    with path.open("r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                log.warning("%s line %d is not valid JSON (torn write?); ignoring it", path, lineno)
                continue
            if isinstance(row, dict):
                yield row


def _latest(paths: Iterable[Path], *, rows: bool = False) -> dict[str, dict[str, Any]]:
    """Rows keyed by case id, last row wins, in the order each id first appeared (``rows``: case rows, each
    checked against the row schema; one of the wrong shape is skipped with a warning, so the case is redone)."""
    out: dict[str, dict[str, Any]] = {}
    redone = 0
    for path in paths:
        for row in read_jsonl(path):
            cid = row.get("case_id", row.get("id"))
            if not isinstance(cid, (str, int)) or isinstance(cid, bool):
                log.warning("%s: a row without a usable 'case_id' is ignored", path)
                continue
            wrong = row_shape_errors(row) if rows else []
            if wrong:  # a field of the wrong type would crash every reader: the row is not read (the case is redone)
                log.warning("%s: the row of case %r has fields of the wrong type; ignoring it (%s)", path,
                            str(cid)[:80], wrong[0][:200])
                continue
            redone += str(cid) in out
            out[str(cid)] = row
    if redone:
        log.info("%d case row(s) were written again later; the last one of each case is used", redone)
    return out


def read_rows(source: Path | Iterable[Path]) -> list[dict[str, Any]]:
    """Every case row of a run folder (all shard files merged) or of the given files; last row per id wins.

    A folder's rows come in the plan's case order (``run.json``), so a sharded run reads exactly like an
    unsharded one; rows of ids outside the plan follow in file order.
    """
    if not isinstance(source, (str, Path)):
        return list(_latest(source, rows=True).values())
    rows = _latest(row_files(Path(source)), rows=True)
    if (Path(source) / RUN_FILE).is_file():
        order = {cid: i for i, cid in enumerate(plan_ids(read_run(Path(source))))}
        return sorted(rows.values(), key=lambda r: order.get(str(r.get("case_id", r.get("id"))), len(order)))
    return list(rows.values())


def plan_ids(run: Mapping[str, Any]) -> list[str]:
    """Every row id a run plans, in order: the cases, then the broken bench records (``run.json``)."""
    return list(run["plan"]["case_ids"]) + [r["case_id"] for r in run["plan"].get("invalid", [])]


def read_generations(out: Path) -> dict[str, dict[str, Any]]:
    """Generation records of a folder (all shard files), keyed by case id; last record per id wins."""
    return _latest(generation_files(out))


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomic (temporary file + rename) and honouring the umask, like every file mbench writes."""
    from multiid_bench._io import atomic_write_bytes

    atomic_write_bytes(Path(path), (json.dumps(data, indent=2, allow_nan=False) + "\n").encode("utf-8"))


#: Largest JSON file a reader loads whole (run.json, results.json): far above any real run's.
MAX_JSON_BYTES = 256_000_000


def read_json(path: Path, what: str = "file") -> dict[str, Any]:
    """A JSON object from ``path``; anything else (not JSON, nested past Python's limit, too large) is a
    :class:`BadInputError` naming the file, never a traceback."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_JSON_BYTES:
            raise BadInputError(f"{path} is {size / 1e6:.0f} MB, too large for {what}; it is not one mbench wrote")
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BadInputError(f"{path} is not a JSON file mbench can read ({str(e)[:200]}); {what} is written by "
                            "mbench, re-create it") from e
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_run(out: Path) -> dict[str, Any]:
    """``run.json`` of a folder, checked for the fields readers rely on (the plan's ids, the config)."""
    path = Path(out) / RUN_FILE
    if not path.is_file():
        raise ConfigError(f"{out} is not a run folder (no {RUN_FILE}); run mbench evaluate/score there first")
    run = read_json(path, "run.json")
    plan, config = run.get("plan"), run.get("config", {})
    ok = (isinstance(plan, dict) and isinstance(plan.get("case_ids"), list)
          and all(isinstance(c, str) for c in plan["case_ids"]) and isinstance(plan.get("invalid", []), list)
          and all(isinstance(r, dict) and isinstance(r.get("case_id"), str) for r in plan.get("invalid", []))
          and isinstance(config, dict))
    if not ok:
        raise BadInputError(f"{path} is damaged: 'plan' (case_ids, invalid) or 'config' has the wrong shape; "
                            "re-run mbench evaluate/score into a new --out")
    return run


def read_results(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """Read and validate a ``results.json`` (or run folder): (its path, its data)."""
    p = results_path(path)
    data = read_json(p, "results.json")
    try:
        errors = schema_errors(data)
    except RecursionError:
        errors = ["$: nested too deeply to be a results file"]
    if errors:
        shown = "\n  ".join(errors[:20]) + (f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else "")
        raise BadInputError(f"{p} does not match the results schema {SCHEMA_PATH}:\n  {shown}\n"
                            "Re-create it with the current 'mbench score', or fix the fields named above.")
    return p, data


@lru_cache(maxsize=1)
def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@lru_cache(maxsize=4)
def _validator(definition: str | None) -> Any:
    import jsonschema

    schema = load_schema()
    if definition is not None:
        schema = {"$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    return jsonschema.Draft202012Validator(schema)


def schema_errors(instance: Any, schema: Mapping[str, Any] | None = None, *, definition: str | None = None) -> list[str]:
    """Every violation as ``"$['path'][0]: message"`` (``jsonschema``); empty when valid. ``definition``
    validates against one ``$defs`` entry of the results schema (e.g. ``case_row``)."""
    if schema is not None:
        import jsonschema

        validator = jsonschema.Draft202012Validator(schema)
    else:
        validator = _validator(definition)
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    return ["$" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in e.absolute_path) + f": {e.message}"
            for e in errors]


def validate_results(data: Mapping[str, Any]) -> None:
    """Raise :class:`BadInputError` listing every violation of ``results.schema.json``."""
    errors = schema_errors(data)
    if errors:
        raise BadInputError(f"results do not match {SCHEMA_PATH.name} (schema_version {SCHEMA_VERSION}):\n"
                            + "\n".join(errors[:20]))


@lru_cache(maxsize=1)
def _row_shape_validator() -> Any:
    import jsonschema

    schema = load_schema()
    row = {k: v for k, v in schema["$defs"]["case_row"].items() if k != "required"}
    return jsonschema.Draft202012Validator({"$defs": schema["$defs"], **row})


def row_shape_errors(row: Mapping[str, Any]) -> list[str]:
    """Fields of a case row whose type or shape is wrong (the row schema without its required fields: readers
    tolerate a missing field, never a wrong one); empty when fine."""
    try:
        errors = list(_row_shape_validator().iter_errors(row))
    except RecursionError:
        return ["$: nested too deeply"]
    out = ["$" + "".join(f"[{p!r}]" for p in e.absolute_path) + f": {e.message}" for e in errors]
    return out + _detection_errors(row.get("detections", {}))


def _detection_errors(detections: Any) -> list[str]:
    """``detections``: detector -> {generated, gt: faces | None, refs: [faces | None]} with well-formed faces."""
    from multiid_bench.runner.cache import CacheEntryError, check_faces

    if not isinstance(detections, dict):
        return ["$['detections']: not an object"]
    errors = []
    for det, views in detections.items():
        if not isinstance(views, dict):
            errors.append(f"$['detections'][{det!r}]: not an object")
            continue
        refs = views.get("refs", [])
        faces_lists = [("generated", views.get("generated")), ("gt", views.get("gt"))]
        if not isinstance(refs, list):
            errors.append(f"$['detections'][{det!r}]['refs']: not a list")
            refs = []
        faces_lists += [(f"refs[{k}]", v) for k, v in enumerate(refs)]
        for where, faces in faces_lists:
            if faces is None:
                continue
            try:
                check_faces(faces)
            except CacheEntryError as e:
                errors.append(f"$['detections'][{det!r}] {where}: {e}")
    return errors


def validate_row(row: Mapping[str, Any]) -> None:
    """Raise :class:`BadInputError` when a case row does not match ``$defs/case_row``."""
    errors = schema_errors(row, definition="case_row")
    if errors:
        raise BadInputError(f"case row {row.get('case_id')!r} does not match the row schema:\n" + "\n".join(errors[:10]))


def unique_record_ids(records: Sequence[Any], taken: Iterable[str]) -> list[str]:
    """Row ids for broken bench records, never equal to a valid case's id nor to each other.

    A record keeps its own id when it is free; a duplicate of an existing id (or a record without one)
    gets ``<id>@line-<n>`` (``invalid-record@line-<n>``), so its failure row sits next to the real case's
    row instead of replacing it, and the counts add up to the rows written.
    """
    used = set(taken)
    out = []
    for rec in records:
        line = rec.line if rec.line is not None else 0
        base = str(rec.case_id) if rec.case_id else "invalid-record"
        cid = base if rec.case_id and base not in used else f"{base}@line-{line}"
        n = 1
        while cid in used:
            n += 1
            cid = f"{base}@line-{line}-{n}"
        used.add(cid)
        out.append(cid)
    return out


def move_aside(out: Path) -> Path:
    """Start a run folder afresh without deleting anything: every existing entry of ``out`` moves into
    ``out/replaced-<UTC timestamp>/`` (earlier ``replaced-*`` folders and the log stay where they are).

    Returns the new folder. Says so on the console (stderr) and appends one line to ``out/replaced.jsonl``
    (when, where to, what), so the run itself records that older rows were set aside.
    """
    import sys
    from datetime import datetime, timezone

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is an existing file, not a run folder; pass a folder")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = out / f"{REPLACED_PREFIX}{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = out / f"{REPLACED_PREFIX}{stamp}-{n}"
    entries = sorted(p for p in out.iterdir() if not (is_set_aside(p.name) or p.name.startswith(LOCK_STEM))) \
        if out.is_dir() else []
    target.mkdir(parents=True)
    for entry in entries:
        entry.rename(target / entry.name)
    append_row(out / REPLACED_LOG, {"moved_to": target.name, "entries": [p.name for p in entries],
                                    "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    message = (f"overwrite: moved {len(entries)} existing entr{'y' if len(entries) == 1 else 'ies'} of {out} into "
               f"{target} (nothing deleted); the run starts afresh")
    log.warning(message)
    print(message, file=sys.stderr)
    return target
