"""JSON Schema validation of ``results.json`` without a hard dependency on ``jsonschema``.

``jsonschema`` is used when installed. Otherwise a small validator checks the keywords our schemas use
(type, const, enum, required, properties, additionalProperties, propertyNames, items, min/maxItems,
minimum, minLength, pattern, anyOf, oneOf, local ``$ref``); any other validation keyword is refused
loudly rather than ignored, so a schema can never pass silently because it was not understood.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from multiid_bench.leaderboard.data import DATA_DIR

__all__ = ["SchemaError", "results_schema", "results_schema_path", "validate"]

_ANNOTATIONS = {"$schema", "$id", "$comment", "$defs", "title", "description", "default", "examples"}
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,), "null": (type(None),),
    "number": (int, float), "integer": (int,),
}


class SchemaError(ValueError):
    """The schema itself uses a keyword the fallback validator does not implement."""


def results_schema_path() -> Path:
    """The runner's schema when it is installed (the contract's owner), else the leaderboard's copy."""
    import multiid_bench

    runner = Path(multiid_bench.__file__).resolve().parent / "runner" / "results.schema.json"
    return runner if runner.is_file() else DATA_DIR / "results.schema.json"


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def results_schema() -> dict[str, Any]:
    return _load(str(results_schema_path()))


def validate(instance: Any, schema: dict[str, Any] | None = None) -> list[str]:
    """Every violation as ``"<json path>: <message>"``; an empty list means valid."""
    schema = results_schema() if schema is None else schema
    try:
        import jsonschema
    except ImportError:
        return [f"{p}: {m}" for p, m in _check(instance, schema, schema, "$")]
    validator_cls = jsonschema.validators.validator_for(schema)
    out = []
    for err in sorted(validator_cls(schema).iter_errors(instance), key=lambda e: list(e.absolute_path)):
        path = "$" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in err.absolute_path)
        out.append(f"{path}: {err.message}")
    return out


def _is_type(value: Any, name: str) -> bool:
    if name in ("number", "integer") and isinstance(value, bool):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[name])


def _check(inst: Any, sch: dict[str, Any], root: dict[str, Any], path: str) -> Iterator[tuple[str, str]]:
    for key, arg in sch.items():
        if key in _ANNOTATIONS:
            continue
        if key == "$ref":
            if not arg.startswith("#/"):
                raise SchemaError(f"only local $ref is supported, got {arg!r}")
            target: Any = root
            for part in arg[2:].split("/"):
                target = target[part]
            yield from _check(inst, target, root, path)
        elif key == "type":
            names = [arg] if isinstance(arg, str) else list(arg)
            if not any(_is_type(inst, n) for n in names):
                yield path, f"expected {' or '.join(names)}, got {type(inst).__name__} {inst!r:.60}"
        elif key == "const":
            if inst != arg or isinstance(inst, bool) != isinstance(arg, bool):
                yield path, f"must be {arg!r}, got {inst!r:.60}"
        elif key == "enum":
            if inst not in arg:
                yield path, f"{inst!r:.60} is not one of {arg}"
        elif key == "required":
            if isinstance(inst, dict):
                for name in arg:
                    if name not in inst:
                        yield path, f"missing required field {name!r}"
        elif key == "properties":
            if isinstance(inst, dict):
                for name, sub in arg.items():
                    if name in inst:
                        yield from _check(inst[name], sub, root, f"{path}[{name!r}]")
        elif key == "additionalProperties":
            if isinstance(inst, dict):
                known = set(sch.get("properties", {}))
                for name, value in inst.items():
                    if name in known:
                        continue
                    if arg is False:
                        yield path, f"unexpected field {name!r}"
                    elif isinstance(arg, dict):
                        yield from _check(value, arg, root, f"{path}[{name!r}]")
        elif key == "propertyNames":
            if isinstance(inst, dict):
                for name in inst:
                    for _, msg in _check(name, arg, root, path):
                        yield path, f"key {name!r}: {msg}"
        elif key == "items":
            if isinstance(inst, list):
                for i, value in enumerate(inst):
                    yield from _check(value, arg, root, f"{path}[{i}]")
        elif key in ("minItems", "maxItems"):
            if isinstance(inst, list) and (len(inst) < arg if key == "minItems" else len(inst) > arg):
                yield path, f"{len(inst)} items, {key} is {arg}"
        elif key == "minimum":
            if _is_type(inst, "number") and inst < arg:
                yield path, f"{inst} is below the minimum {arg}"
        elif key == "minLength":
            if isinstance(inst, str) and len(inst) < arg:
                yield path, f"string shorter than {arg}"
        elif key == "pattern":
            if isinstance(inst, str) and not re.search(arg, inst):
                yield path, f"{inst!r} does not match {arg!r}"
        elif key in ("anyOf", "oneOf"):
            passing = sum(1 for sub in arg if not list(_check(inst, sub, root, path)))
            if passing == 0 or (key == "oneOf" and passing > 1):
                yield path, f"{inst!r:.60} matches {passing} of the {key} alternatives"
        else:
            raise SchemaError(
                f"schema keyword {key!r} at {path} is not implemented by the fallback validator; "
                "install jsonschema (pip install jsonschema) to validate with this schema"
            )
