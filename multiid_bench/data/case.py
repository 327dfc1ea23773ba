"""The benchmark case and bench: the one record every loader produces and every adapter and scorer reads.

A case holds paths, not pixels: images are decoded once, by the runner, through ``multiid_bench.images``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Literal, Mapping, get_args

from multiid_bench.errors import BadInputError

__all__ = ["MAX_CASE_ID_LENGTH", "MAX_STEM_BYTES", "SUBSETS", "Bench", "Box", "Case", "Subset", "case_file_stem", "case_id_problem",
           "subset_for_persons"]

Subset = Literal["p1", "p2", "p3"]
SUBSETS: tuple[str, ...] = get_args(Subset)
Box = tuple[float, float, float, float]

#: Longest case id accepted (UTF-8 bytes). Ids name files (``<id>.png``, ``<id>/out.jpg``) and a file name may
#: have 255 bytes; a longer id is a broken record.
MAX_CASE_ID_LENGTH = 200


def case_id_problem(case_id: str) -> str | None:
    """Why ``case_id`` cannot be a case id (empty, too long, a path separator or control character), or None.

    Example:
        >>> case_id_problem("p1_0001"), case_id_problem("a/b") is not None, case_id_problem("x" * 300) is not None
        (None, True, True)
    """
    import unicodedata

    if not case_id.strip() or case_id in (".", ".."):
        return f"{case_id!r} must be non-empty with no path separators"
    if len(case_id.encode("utf-8")) > MAX_CASE_ID_LENGTH:  # bytes: file names are limited in bytes
        return (f"is {len(case_id.encode('utf-8'))} bytes long (UTF-8), over the limit of {MAX_CASE_ID_LENGTH}; "
                "shorten it")
    if any(c in case_id for c in "/\\") or any(unicodedata.category(c) in ("Cc", "Cs") for c in case_id):
        return f"{case_id[:60]!r} must have no path separators or control characters"
    return None


def subset_for_persons(num_persons: int) -> Subset:
    """p1 = one person, p2 = two, p3 = three or four (the paper's subsets)."""
    if num_persons == 1:
        return "p1"
    if num_persons == 2:
        return "p2"
    if num_persons in (3, 4):
        return "p3"
    raise BadInputError(f"MultiID-Bench cases have 1-4 persons, got {num_persons}")


def _box(value: Any, case_id: str, index: int) -> Box:
    try:
        x1, y1, x2, y2 = (float(v) for v in value)
    except (TypeError, ValueError):
        raise BadInputError(
            f"case {case_id!r}: field 'boxes[{index}]' must be [x1, y1, x2, y2] numbers, got {value!r}"
        ) from None
    if not (x2 > x1 and y2 > y1):
        raise BadInputError(f"case {case_id!r}: field 'boxes[{index}]' = {value!r} has x2 <= x1 or y2 <= y1")
    return (x1, y1, x2, y2)


@dataclass(frozen=True)
class Case:
    """One benchmark case.

    Attributes:
        id: unique, stable id (used for seeds, sharding, resume and file names).
        subset: ``p1`` single person, ``p2`` two, ``p3`` three or four.
        prompt: the text prompt.
        gt: path of the ground-truth photo (``None`` when a bench has no GT).
        refs: reference image paths, one per person, in the order of ``boxes``.
        boxes: GT face boxes ``(x1, y1, x2, y2)`` in GT pixel coordinates, one per person.
        num_persons: number of identities in the case.
        meta: anything else a loader keeps (source row, dataset id); never read by metrics.
    """

    id: str
    subset: Subset
    prompt: str
    gt: Path | None
    refs: tuple[Path, ...]
    boxes: tuple[Box, ...] = ()
    num_persons: int = 1
    meta: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not self.id or "/" in self.id or "\\" in self.id or self.id in (".", ".."):
            raise BadInputError(f"case id {self.id!r} must be non-empty and contain no path separators")
        if self.subset not in SUBSETS:
            raise BadInputError(f"case {self.id!r}: field 'subset' must be one of {SUBSETS}, got {self.subset!r}")
        if not 1 <= self.num_persons <= 4:
            raise BadInputError(f"case {self.id!r}: field 'num_persons' must be 1-4, got {self.num_persons}")
        if not self.refs:
            raise BadInputError(f"case {self.id!r}: field 'refs' is empty; a case needs 1-4 reference images")
        if len(self.refs) > 4:
            raise BadInputError(f"case {self.id!r}: field 'refs' has {len(self.refs)} images; at most 4")
        if self.boxes and len(self.boxes) != len(self.refs):
            raise BadInputError(
                f"case {self.id!r}: {len(self.refs)} references but {len(self.boxes)} boxes; "
                "give one GT face box per reference, in the same order"
            )
        object.__setattr__(self, "refs", tuple(Path(p) for p in self.refs))
        object.__setattr__(self, "boxes", tuple(_box(b, self.id, i) for i, b in enumerate(self.boxes)))
        if self.gt is not None:
            object.__setattr__(self, "gt", Path(self.gt))
        if not isinstance(self.meta, MappingProxyType):
            object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subset": self.subset,
            "prompt": self.prompt,
            "gt": str(self.gt) if self.gt is not None else None,
            "refs": [str(p) for p in self.refs],
            "boxes": [list(b) for b in self.boxes],
            "num_persons": self.num_persons,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Case":
        missing = [k for k in ("id", "prompt", "refs") if k not in d]
        if missing:
            raise BadInputError(f"case {d.get('id', '?')!r}: missing field(s) {', '.join(missing)}")
        refs = d["refs"]
        if isinstance(refs, (str, Path)):
            refs = [refs]
        n = int(d.get("num_persons", len(refs)))
        return cls(
            id=str(d["id"]),
            subset=d.get("subset") or subset_for_persons(n),
            prompt=str(d["prompt"]),
            gt=Path(d["gt"]) if d.get("gt") else None,
            refs=tuple(Path(p) for p in refs),
            boxes=tuple(tuple(b) for b in d.get("boxes") or ()),  # type: ignore[misc]
            num_persons=n,
            meta=d.get("meta") or {},
        )


@dataclass(frozen=True)
class Bench:
    """An ordered set of cases plus the hash that identifies exactly this content.

    ``manifest_sha256`` hashes the canonical JSON of every case (paths relative to ``root``), so two
    runs are comparable only when it matches.
    """

    id: str
    root: Path
    cases: tuple[Case, ...]
    manifest_sha256: str = ""

    def __post_init__(self) -> None:
        ids = [c.id for c in self.cases]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise BadInputError(f"bench {self.id!r}: duplicate case ids {dup[:5]}")
        if not self.manifest_sha256:
            object.__setattr__(self, "manifest_sha256", self.compute_hash(self.cases, self.root))

    @staticmethod
    def compute_hash(cases: Iterable[Case], root: Path) -> str:
        h = hashlib.sha256()
        for c in cases:
            d = c.to_dict()
            d.pop("meta")
            d["gt"] = _rel(d["gt"], root)
            d["refs"] = [_rel(p, root) for p in d["refs"]]
            h.update(json.dumps(d, sort_keys=True).encode())
            h.update(b"\n")
        return h.hexdigest()

    def select(self, subsets: Iterable[str] | None = None, limit: int | None = None) -> "Bench":
        """A sub-bench: cases of ``subsets`` (all when ``None``), the first ``limit`` of them.

        A name matches a case's ``subset`` (p1/p2/p3) or its ``meta["task_type"]`` (a bench's own task types,
        e.g. OmniContext's ``single_character``).
        """
        wanted = set(subsets) if subsets is not None else None
        chosen = [c for c in self.cases if wanted is None or c.subset in wanted or c.meta.get("task_type") in wanted]
        if limit is not None:
            chosen = chosen[:limit]
        return Bench(id=self.id, root=self.root, cases=tuple(chosen))

    def __len__(self) -> int:
        return len(self.cases)


def _rel(p: str | None, root: Path) -> str | None:
    if p is None:
        return None
    try:
        return str(Path(p).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(p)


#: Longest stored file stem in bytes: well under NAME_MAX (255 bytes on Linux/macOS) with room for suffixes.
MAX_STEM_BYTES = 120


def case_file_stem(case_id: str) -> str:
    """The file stem of a case: its id, or (when its UTF-8 form is longer than :data:`MAX_STEM_BYTES`) a prefix
    of it plus 16 hex digits of its sha256, so a stored name never exceeds the file system's limit and two
    ids never share a name.

    Example:
        >>> case_file_stem("p1_0001")
        'p1_0001'
        >>> s = case_file_stem("é" * 150); len(s.encode()) <= MAX_STEM_BYTES and s != case_file_stem("é" * 151)
        True
    """
    raw = case_id.encode("utf-8")
    if len(raw) <= MAX_STEM_BYTES:
        return case_id
    import hashlib

    digest = hashlib.sha256(raw).hexdigest()[:16]
    prefix = raw[: MAX_STEM_BYTES - 17].decode("utf-8", errors="ignore")
    return f"{prefix}-{digest}"
