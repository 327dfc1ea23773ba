"""Bench records: one broken-record type, the record checks every format shares, and the JSONL manifest.

Why its own module: every format loader (``demo.py``, ``hub.py``, ``official.py``, ``omnicontext.py``) builds
its cases with these types and rules, and ``loaders.py`` dispatches to those loaders; keeping the shared
part here, below both, means the loaders never import the dispatcher back.

* :class:`InvalidRecord`, :class:`RecordError`: a record that could not become a case, as data / as raised.
* :class:`BenchLoad`: a loaded bench plus what did not load.
* :func:`regularise`: a row reduced to what the official conversion and evaluation use, irregularities listed.
* :func:`record_to_case`, :func:`load_jsonl`: the JSONL manifest, the format for your own data (docs/data.md).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from multiid_bench.data._store import PathEscapeError, resolve_inside
from multiid_bench.data.case import MAX_CASE_ID_LENGTH, SUBSETS, Bench, Case, case_id_problem, subset_for_persons
from multiid_bench.errors import BadInputError, MissingDataError

__all__ = [
    "MANIFEST_NAMES",
    "OFFICIAL_REF_LIMIT",
    "BenchLoad",
    "InvalidRecord",
    "RecordError",
    "load_jsonl",
    "record_to_case",
    "regularise",
]

#: File names a bench folder's JSONL manifest may have.
MANIFEST_NAMES = ("bench.jsonl", "manifest.jsonl")
_KNOWN_FIELDS = {"id", "subset", "prompt", "gt", "refs", "boxes", "num_persons", "meta", "identities"}


@dataclass(frozen=True)
class InvalidRecord:
    """One record that could not become a case: where it is, which case and field, and why."""

    source: str
    case_id: str | None
    field: str
    reason: str
    line: int | None = None

    @property
    def message(self) -> str:
        where = f"{self.source} line {self.line}" if self.line is not None else self.source
        case = f"case {self.case_id!r}" if self.case_id else "record without a usable id"
        return f"{where}, {case}: field {self.field!r}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "case_id": self.case_id, "field": self.field, "reason": self.reason,
                "line": self.line, "message": self.message}


@dataclass(frozen=True)
class BenchLoad:
    """A loaded bench plus what did not load.

    Attributes:
        bench: the valid cases.
        invalid: broken records, in source order (the runner records them as failed cases).
        kind: which loader read the spec.
        ref_mode: ``"raw_refs"`` (dataset references as given) or ``"prepared_crops"`` (tight face crops
            as a generator was fed, e.g. an official folder); see ``refcrop.reference_mode``.
    """

    bench: Bench
    invalid: tuple[InvalidRecord, ...] = ()
    kind: str = "jsonl"
    ref_mode: str = "raw_refs"
    extra: Mapping[str, Any] = field(default_factory=dict)


#: References the official pipeline keeps per subset: hf2bench writes the first input image (p1) or the
#: first two (p2); for p3 it writes all of them and the evaluator has four reference slots.
OFFICIAL_REF_LIMIT = {"p1": 1, "p2": 2, "p3": 4}
#: Fewest references a subset can run with: the official p2 index always lists two reference files
#: (the second is missing when a row has one), so inference cannot open it.
_MIN_REFS = {"p1": 1, "p2": 2, "p3": 1}


def regularise(subset: str, refs: list[Any], boxes: list[Any], num_persons: Any
               ) -> tuple[list[Any], list[Any], int, list[dict[str, str]]]:
    """Reduce a row to what the official conversion and evaluation use, listing every irregularity.

    The official ``hf2bench`` goes by ``subset`` alone: it never reads the dataset's boxes, reads
    ``num_persons`` only to name p3 folders, and keeps the first 1 (p1), 2 (p2) or all (p3, of which
    the evaluator uses 4) input images. Rows it accepts are therefore evaluated here too, not refused:

    * more references than the subset uses -> the first ``OFFICIAL_REF_LIMIT[subset]`` (``extra_refs``);
    * ``num_persons`` disagreeing with the subset or the references kept -> the number of references
      kept is the number of persons (``num_persons_mismatch``); p3 with fewer than 3 (``few_refs``);
    * a box count different from the references kept -> the first boxes when there are more (as the
      official inference cuts its detected boxes), none when there are fewer (``box_count``): the paper
      protocol never uses boxes, the strict one then resolves GT faces without them.

    Returns:
        ``(refs, boxes, num_persons, irregular)`` with ``irregular`` a list of ``{"kind", "detail"}``.

    Raises:
        RecordError: only for rows the official pipeline cannot run either (p2 with one reference).
    """
    irregular: list[dict[str, str]] = []
    limit = OFFICIAL_REF_LIMIT[subset]
    if len(refs) < _MIN_REFS[subset]:
        raise RecordError("refs", f"subset {subset} needs {_MIN_REFS[subset]} reference images, got {len(refs)} "
                                  "(the official conversion lists a second reference file that would not exist)")
    if len(refs) > limit:
        irregular.append({"kind": "extra_refs", "detail": f"{len(refs)} reference images; subset {subset} uses the "
                                                           f"first {limit}, as the official pipeline does"})
        refs = refs[:limit]
    n = len(refs)
    if subset == "p3" and n < 3:
        irregular.append({"kind": "few_refs", "detail": f"subset p3 with {n} reference image(s); evaluated with {n}"})
    if num_persons is not None and num_persons != n:
        irregular.append({"kind": "num_persons_mismatch",
                          "detail": f"num_persons={num_persons!r} but subset {subset} is evaluated with {n} "
                                    "reference(s); the official conversion goes by the subset"})
    if boxes and len(boxes) != n:
        kept = boxes[:n] if len(boxes) > n else []
        irregular.append({"kind": "box_count", "detail": f"{len(boxes)} boxes for {n} references; "
                                                         + ("the first kept" if kept else "boxes dropped")
                                                         + " (the paper protocol never uses boxes)"})
        boxes = kept
    return refs, boxes, n, irregular


class RecordError(ValueError):
    """Raised inside record parsing; carries the field that is wrong."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


def _str_field(rec: Mapping[str, Any], name: str, *, required: bool = True) -> str | None:
    if name not in rec or rec[name] is None:
        if required:
            raise RecordError(name, "missing (required)")
        return None
    value = rec[name]
    if not isinstance(value, str):
        raise RecordError(name, f"must be a string, got {type(value).__name__} {value!r}")
    return value


def _data_path(root: Path, value: Any, field_name: str, check_exists: bool) -> Path:
    if not isinstance(value, str) or not value:
        raise RecordError(field_name, f"must be a non-empty path string, got {value!r}")
    try:
        p = resolve_inside(root, value)
    except PathEscapeError:
        raise RecordError(
            field_name, f"path {value!r} escapes the data root {root}; keep data files under the manifest's folder"
        ) from None
    if check_exists and not p.is_file():
        raise RecordError(field_name, f"file {value!r} not found under the data root {root}; fix the path "
                                      "(relative to the manifest's folder)")
    return p


def record_to_case(rec: Any, *, root: Path, check_files: bool = True) -> Case:
    """Validate one manifest record (a JSON object) and build its :class:`Case`.

    Raises:
        RecordError: with ``.field`` naming the offending field.
    """
    if not isinstance(rec, dict):
        raise RecordError("<record>", f"must be a JSON object, got {type(rec).__name__}")
    case_id = _str_field(rec, "id") or ""
    problem = case_id_problem(case_id)
    if problem:
        raise RecordError("id", problem)
    prompt = _str_field(rec, "prompt")
    refs_raw = rec.get("refs")
    if refs_raw is None:
        raise RecordError("refs", "missing (required): a list of 1-4 reference image paths")
    if isinstance(refs_raw, str):
        refs_raw = [refs_raw]
    if not isinstance(refs_raw, list) or not refs_raw:
        raise RecordError("refs", f"must be a non-empty list of paths, got {refs_raw!r}")
    declared = rec.get("num_persons")
    if declared is not None and (isinstance(declared, bool) or not isinstance(declared, int) or declared < 1):
        raise RecordError("num_persons", f"must be a positive integer, got {declared!r}")
    subset = rec.get("subset") or subset_for_persons(min(declared or len(refs_raw), 4))
    if subset not in SUBSETS:
        raise RecordError("subset", f"must be one of {', '.join(SUBSETS)}, got {subset!r}")
    boxes = rec.get("boxes") or []
    if not isinstance(boxes, list):
        raise RecordError("boxes", f"must be a list of [x1, y1, x2, y2], got {boxes!r}")
    refs_raw, boxes, n, irregular = regularise(subset, refs_raw, boxes, declared)
    refs = tuple(_data_path(root, r, f"refs[{i}]", check_files) for i, r in enumerate(refs_raw))
    gt = None if rec.get("gt") is None else _data_path(root, rec["gt"], "gt", check_files)
    for i, b in enumerate(boxes):
        if (not isinstance(b, (list, tuple)) or len(b) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in b)):
            raise RecordError(f"boxes[{i}]", f"must be [x1, y1, x2, y2] numbers, got {b!r}")
        if not (b[2] > b[0] and b[3] > b[1]):
            raise RecordError(f"boxes[{i}]", f"{b!r} has x2 <= x1 or y2 <= y1")
    meta = rec.get("meta") or {}
    if not isinstance(meta, dict):
        raise RecordError("meta", f"must be a JSON object, got {meta!r}")
    meta = dict(meta)
    if irregular:
        meta["irregular"] = irregular
        if declared is not None and declared != n:
            meta["num_persons_declared"] = declared
    if "identities" in rec:
        ids = rec["identities"]
        if isinstance(ids, list) and len(ids) > len(refs) and any(i["kind"] == "extra_refs" for i in irregular):
            ids = ids[: len(refs)]
        if not isinstance(ids, list) or len(ids) != len(refs) or not all(isinstance(x, str) for x in ids):
            raise RecordError("identities", f"must be a list of {len(refs)} strings (one per reference), got {ids!r}")
        meta["identities"] = ids
    unknown = sorted(set(rec) - _KNOWN_FIELDS)
    if unknown:
        raise RecordError(unknown[0], f"unknown field; allowed: {', '.join(sorted(_KNOWN_FIELDS))} (put extras under 'meta')")
    try:
        return Case(id=case_id, subset=subset, prompt=str(prompt), gt=gt, refs=refs,
                    boxes=tuple(tuple(b) for b in boxes), num_persons=n, meta=meta)  # type: ignore[arg-type]
    except BadInputError as e:  # Case's own checks; already name the case and field
        raise RecordError("<case>", str(e)) from None


def load_jsonl(
    path: str | Path,
    *,
    data_root: str | Path | None = None,
    bench_id: str | None = None,
    check_files: bool = True,
) -> BenchLoad:
    """Read a JSONL manifest: one case per line, paths relative to ``data_root`` (default: its folder).

    Blank lines are ignored. Broken lines become :class:`InvalidRecord` with their 1-based line number.

    Raises:
        MissingDataError: the manifest file does not exist.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingDataError(f"manifest {path} not found. Check --bench.")
    root = Path(data_root).expanduser() if data_root is not None else path.parent
    if not root.is_dir():
        raise MissingDataError(f"data root {root} for manifest {path} is not a folder. Check the data_root argument.")
    cases: list[Case] = []
    invalid: list[InvalidRecord] = []
    seen: dict[str, int] = {}
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BadInputError(f"manifest {path} is not UTF-8 text ({e}). Save it as UTF-8 JSONL.") from e
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        case_id: str | None = None
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            invalid.append(InvalidRecord(src, None, "<line>", f"not valid JSON ({e.msg} at column {e.colno})", lineno))
            continue
        if isinstance(rec, dict) and isinstance(rec.get("id"), str) \
                and len(rec["id"].encode("utf-8", "replace")) <= MAX_CASE_ID_LENGTH:
            case_id = rec["id"]  # an over-long id is not reused as the row id: its row is invalid-record@line-N
        try:
            case = record_to_case(rec, root=root, check_files=check_files)
        except RecordError as e:
            invalid.append(InvalidRecord(src, case_id, e.field, e.reason, lineno))
            continue
        if case.id in seen:
            invalid.append(InvalidRecord(src, case.id, "id", f"duplicate id (first on line {seen[case.id]})", lineno))
            continue
        seen[case.id] = lineno
        cases.append(case)
    if not cases and not invalid:
        raise BadInputError(f"manifest {path} has no records. Write one JSON object per line (see docs/data.md).")
    if bench_id is None:
        bench_id = path.parent.name if path.name in MANIFEST_NAMES else path.stem
    bench = Bench(id=bench_id, root=root, cases=tuple(cases))
    from multiid_bench.data.refcrop import reference_mode

    return BenchLoad(bench=bench, invalid=tuple(invalid), kind="jsonl", ref_mode=reference_mode(bench))
