"""Loading PyTorch checkpoints without ever running code from the file.

Every checkpoint goes through ``torch.load(..., weights_only=True)``. PyTorch Lightning checkpoints
(AdaFace's) also pickle training-time objects (hyper-parameter containers, callbacks' state) whose
classes are not on torch's allow-list, so a plain ``weights_only=True`` load refuses them. We list those
globals with ``torch.serialization.get_unsafe_globals_in_checkpoint`` and map each one to an *inert*
stand-in class (it only stores what it is given) for this one load. The real class is never imported
and no pickled callable is ever invoked: a hostile ``os.system`` reference becomes a harmless stub.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from multiid_bench.errors import MissingWeightsError

__all__ = ["load_state_dict", "load_strict", "strip_prefix"]

log = logging.getLogger(__name__)


class _Inert:
    """Stand-in for a class a checkpoint references but we refuse to import: stores, never executes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # accepts any constructor call
        self._args = args

    def __setstate__(self, state: Any) -> None:
        self._state = state


class _InertDict:
    """Stand-in for a ``dict`` subclass (e.g. Lightning's ``AttributeDict``): constructs a plain dict."""

    def __new__(cls, *args: Any, **kwargs: Any) -> dict:  # type: ignore[misc]
        return {}


def _stub(qualified: str, base: type) -> type:
    module, _, name = qualified.rpartition(".")
    return type(name or "Inert", (base,), {"__module__": module or "unknown", "__qualname__": name or "Inert"})


def _load_with_stubs(p: Path, device: str) -> Any:
    """``weights_only=True`` load with every non-allow-listed global mapped to an inert stub."""
    import pickle

    import torch

    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(str(p))
    log.info("checkpoint %s references non-tensor classes %s; loading them as inert stubs", p, unsafe)
    dict_like: set[str] = set()
    for _ in range(len(unsafe) + 1):
        stubs = [(_stub(n, _InertDict if n in dict_like else _Inert), n) for n in unsafe]
        try:
            with torch.serialization.safe_globals(stubs):
                return torch.load(p, map_location=device, weights_only=True)
        except pickle.UnpicklingError as e:
            # dict subclasses must become plain dicts for SETITEMS; learn which ones from the refusal
            hit = [n for n in unsafe if n not in dict_like and "SETITEM" in str(e) and f"'{n}'" in str(e)]
            if not hit:
                raise
            dict_like.update(hit)
    raise pickle.UnpicklingError(f"could not map the globals {unsafe} of {p} to inert stubs")


def load_state_dict(path: str | Path, *, key: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and return its tensor dictionary.

    Args:
        path: a ``.pt``/``.pth``/``.ckpt`` file.
        key: take ``ckpt[key]`` (e.g. ``"state_dict"`` for Lightning); ``None`` returns the top level.
        device: ``map_location``.

    Raises:
        MissingWeightsError: the file is not a readable PyTorch checkpoint or lacks ``key``.
    """
    import pickle

    import torch

    p = Path(path)
    try:
        try:
            obj = torch.load(p, map_location=device, weights_only=True)
        except pickle.UnpicklingError:
            obj = _load_with_stubs(p, device)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
        raise MissingWeightsError(
            f"{p} is not a readable PyTorch checkpoint ({type(e).__name__}: {e}). "
            "Delete it and fetch it again with `mbench weights download <id>`."
        ) from e
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            found = list(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
            raise MissingWeightsError(f"{p} has no {key!r} entry (found {found}); is it the right checkpoint?")
        obj = obj[key]
    if not isinstance(obj, Mapping):
        raise MissingWeightsError(f"{p} does not contain a state dict (got {type(obj).__name__}).")
    return dict(obj)


def strip_prefix(state: Mapping[str, Any], prefix: str, *, only_prefixed: bool = False) -> dict[str, Any]:
    """Remove ``prefix`` from keys (``only_prefixed`` drops keys without it, as AdaFace's loader does)."""
    out: dict[str, Any] = {}
    for k, v in state.items():
        if k.startswith(prefix):
            out[k[len(prefix):]] = v
        elif not only_prefixed:
            out[k] = v
    return out


def load_strict(net: Any, state: dict, path: Path) -> None:
    """Load ``state`` into ``net`` with every key required; a mismatch names the file (a wrong or partial download).

    Shared by the face models and the RetinaFace detector, which load their torch checkpoints the same way.
    """
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise MissingWeightsError(f"{path} does not fit {type(net).__name__}: {str(e)[:400]}") from e
