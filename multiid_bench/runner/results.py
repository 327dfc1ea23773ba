"""Per-case rows (``cases.jsonl``) and the aggregate ``results.json``: writing, reading, validating.

Rows are appended, flushed and fsync'ed as each case finishes, so a killed run loses at most the case in
flight; a torn last line (the process died mid-write) is cut off before the next append. ``results.json``
is written atomically and validated against ``results.schema.json`` (the file the leaderboard reads).
"""
from __future__ import annotations

import json
import logging
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

from multiid_bench.errors import BadInputError

__all__ = [
    "ROW_SCHEMA_VERSION",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "append_row",
    "load_schema",
    "package_versions",
    "read_rows",
    "repair_tail",
    "utc_now",
    "validate_results",
    "write_json_atomic",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ROW_SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("results.schema.json")
_PACKAGES = ("numpy", "scipy", "torch", "torchvision", "onnxruntime", "insightface", "facenet-pytorch", "dlib-bin",
             "open_clip_torch", "transformers", "diffusers", "pillow", "opencv-python")


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_versions() -> dict[str, str | None]:
    """Versions of the packages that can move a number (None = not installed); no imports."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def repair_tail(path: Path) -> int:
    """Cut a torn last line (no trailing newline) left by a killed writer; returns bytes removed."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with path.open("rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        # Walk back to the last newline (rows are small; read the tail in blocks).
        pos = size
        block = 1 << 16
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        f.truncate(keep)
    log.warning("removed a torn last row from %s (%d bytes); that case will be redone", path, size - keep)
    return size - keep


def append_row(path: Path, row: Mapping[str, Any]) -> None:
    """Append one JSON row and make it durable before the next case starts."""
    line = json.dumps(row, sort_keys=True, allow_nan=False) + "\n"
    with path.open("a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_rows(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Rows of all ``paths``; the first row of a case id wins; torn or unparsable lines are skipped."""
    seen: dict[str, dict[str, Any]] = {}
    for path in paths:
        if not path.exists():
            continue
        with path.open("r", encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    log.warning("%s line %d is not valid JSON (torn write?); ignoring it", path, lineno)
                    continue
                cid = str(row.get("case_id"))
                seen.setdefault(cid, row)
    return list(seen.values())


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    from multiid_bench._io import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n").encode("utf-8"))


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate_results(data: Mapping[str, Any]) -> None:
    """Check ``data`` against ``results.schema.json``; raise BadInputError listing every violation.

    Uses ``jsonschema`` when installed, else a built-in checker of the keywords the schema uses
    (type, required, properties, additionalProperties, items, enum, const, minimum, maximum,
    minItems, maxItems).
    """
    schema = load_schema()
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:
        errors = list(_check(data, schema, "$", schema))
    else:  # pragma: no cover - not installed in CI
        validator = jsonschema.Draft202012Validator(schema)
        errors = [f"{'/'.join(map(str, e.path)) or '$'}: {e.message}" for e in validator.iter_errors(data)]
    if errors:
        shown = "\n".join(errors[:20])
        raise BadInputError(f"results do not match {SCHEMA_PATH.name} (schema_version {SCHEMA_VERSION}):\n{shown}")


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list, tuple), "string": (str,), "boolean": (bool,), "null": (type(None),),
    "integer": (int,), "number": (int, float),
}


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def _check(value: Any, schema: Mapping[str, Any], where: str, root: Mapping[str, Any]) -> Iterable[str]:
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        yield from _check(value, target, where, root)
        return
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, t) for t in names):
            yield f"{where}: expected {'/'.join(names)}, got {type(value).__name__}"
            return
    if "const" in schema and value != schema["const"]:
        yield f"{where}: must equal {schema['const']!r}, got {value!r}"
    if "enum" in schema and value not in schema["enum"]:
        yield f"{where}: must be one of {schema['enum']}, got {value!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            yield f"{where}: {value} < minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            yield f"{where}: {value} > maximum {schema['maximum']}"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                yield f"{where}: missing required key {key!r}"
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, sub in value.items():
            if key in props:
                yield from _check(sub, props[key], f"{where}.{key}", root)
            elif extra is False:
                yield f"{where}: unexpected key {key!r}"
            elif isinstance(extra, Mapping):
                yield from _check(sub, extra, f"{where}.{key}", root)
    if isinstance(value, (list, tuple)):
        if "minItems" in schema and len(value) < schema["minItems"]:
            yield f"{where}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            yield f"{where}: more than {schema['maxItems']} items"
        if "items" in schema:
            for i, item in enumerate(value):
                yield from _check(item, schema["items"], f"{where}[{i}]", root)
