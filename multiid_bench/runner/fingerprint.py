"""A best-effort fingerprint of a Python callable, so that a resumed run never reuses a changed function.

A generator function is identified by more than its name: re-running a notebook cell after fixing the
function (or retraining what it closes over) must not silently re-score the old images. The fingerprint
hashes what Python can see without running the function:

* its code (bytecode, constants, names; nested functions and lambdas included), defaults and keyword defaults;
* the values its closure cells and the globals it names hold, when they are immutable plain data (numbers,
  strings, bytes, tuples/frozensets of those; numpy arrays by content) or functions (hashed the same way, a few
  levels deep); lists, dicts and sets (often accumulators the function appends to) and any other object
  contribute their type name only;
* for ``functools.partial`` the wrapped function and the bound arguments; for a bound method or a callable
  object its class's ``__call__`` code and the object's plain-data attributes.

What it cannot see: state hidden in objects (a torch model's weights, a pipeline loaded from disk), files the
function reads, other modules' code. For those pass ``version=`` (any string: a checkpoint hash, a date) to
``mb.evaluate`` / ``mb.generate``; it is hashed into the fingerprint too.
"""
from __future__ import annotations

import functools
import hashlib
import types
from typing import Any, Callable

__all__ = ["callable_fingerprint"]

_MAX_DEPTH = 3
_MAX_ITEMS = 10_000


def callable_fingerprint(fn: Callable[..., Any], version: str | None = None) -> str:
    """16 hex digits identifying ``fn`` (and ``version``) as far as its code and plain data go.

    Example:
        >>> a = callable_fingerprint(lambda case: 1)
        >>> a == callable_fingerprint(lambda case: 1), a == callable_fingerprint(lambda case: 2)
        (True, False)
        >>> a == callable_fingerprint(lambda case: 1, version="ckpt-2")
        False
    """
    h = hashlib.sha256()
    _feed(h, fn, 0, set())
    if version is not None:
        h.update(b"\x00version:" + str(version).encode())
    return h.hexdigest()[:16]


def _feed(h: "hashlib._Hash", value: Any, depth: int, seen: set[int]) -> None:
    if id(value) in seen:
        h.update(b"<cycle>")
        return
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
        return
    seen.add(id(value))
    try:
        _feed_object(h, value, depth, seen)
    finally:
        seen.discard(id(value))


def _feed_object(h: "hashlib._Hash", value: Any, depth: int, seen: set[int]) -> None:
    if isinstance(value, types.CodeType):
        h.update(b"code:" + value.co_code + repr(value.co_names).encode())
        for const in value.co_consts:
            _feed(h, const, depth, seen)
        return
    if isinstance(value, (list, dict, set)):  # mutable: often an accumulator the function appends to
        h.update(f"mutable:{type(value).__name__};".encode())
        return
    if isinstance(value, (tuple, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, frozenset) else value
        h.update(f"{type(value).__name__}[{len(value)}](".encode())
        for item in list(items)[:_MAX_ITEMS]:
            _feed(h, item, depth, seen)
        h.update(b")")
        return
    if type(value).__module__ == "numpy" and hasattr(value, "tobytes") and hasattr(value, "dtype"):
        h.update(f"ndarray:{getattr(value, 'shape', ())}:{value.dtype};".encode())
        h.update(hashlib.sha256(value.tobytes()).digest())
        return
    if isinstance(value, types.ModuleType):
        h.update(f"module:{value.__name__};".encode())
        return
    if depth > _MAX_DEPTH:
        h.update(f"deep:{type(value).__qualname__};".encode())
        return
    if isinstance(value, functools.partial):
        h.update(b"partial:")
        for part in (value.func, value.args, tuple(sorted(value.keywords.items()))):
            _feed(h, part, depth + 1, seen)
        return
    if isinstance(value, types.MethodType):
        h.update(f"method:{type(value.__self__).__qualname__};".encode())
        _feed(h, value.__func__, depth + 1, seen)
        _feed_attributes(h, value.__self__, depth, seen)
        return
    if isinstance(value, types.FunctionType):
        _feed_function(h, value, depth, seen)
        return
    call = getattr(type(value), "__call__", None)
    if isinstance(call, types.FunctionType):  # a callable object: its class's __call__ and plain attributes
        h.update(f"callable:{type(value).__qualname__};".encode())
        _feed(h, call, depth + 1, seen)
        _feed_attributes(h, value, depth, seen)
        return
    h.update(f"object:{type(value).__module__}.{type(value).__qualname__};".encode())


def _feed_function(h: "hashlib._Hash", fn: types.FunctionType, depth: int, seen: set[int]) -> None:
    h.update(f"function:{fn.__qualname__};".encode())
    _feed(h, fn.__code__, depth, seen)
    _feed(h, fn.__defaults__, depth, seen)
    _feed(h, tuple(sorted((fn.__kwdefaults__ or {}).items())), depth, seen)
    for cell in fn.__closure__ or ():
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell (a name assigned later)
            contents = "<empty cell>"
        _feed(h, contents, depth + 1, seen)
    for name in _global_names(fn.__code__):
        if name in fn.__globals__:
            h.update(f"global:{name}=".encode())
            _feed(h, fn.__globals__[name], depth + 1, seen)


def _global_names(code: types.CodeType) -> list[str]:
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _global_names(const)
    return sorted(set(names))


def _feed_attributes(h: "hashlib._Hash", obj: Any, depth: int, seen: set[int]) -> None:
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict):
        for key in sorted(attrs):
            h.update(f"attr:{key}=".encode())
            _feed(h, attrs[key], depth + 1, seen)
