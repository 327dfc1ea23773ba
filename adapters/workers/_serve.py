"""Worker side of the adapter protocol (see ``adapters/_worker.py``). Standard library + Pillow only.

A worker script defines ``load(settings, device) -> state`` and ``generate(state, request, seed) -> PIL image``
and calls :func:`serve`. Requests arrive with images as ``{"__image__": path}``; :func:`serve` turns them
back into PIL images. The real stdout is kept for protocol replies; anything upstream code prints goes to
stderr (the worker log).
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any, Callable


class MissingWeights(RuntimeError):
    """Raise from ``load`` when a checkpoint is absent (the client maps it to exit code 3)."""


def load_env_file(path: str, *, override: bool = False) -> dict:
    """Read ``KEY=VALUE`` lines of a ``.env`` file into ``os.environ``; return what was read.

    Why here: some upstream repositories (USO) read their weight paths from ``.env`` through python-dotenv at
    import time of their own module, so the file must be loaded before that import. Like python-dotenv's
    default, variables already set in the environment win unless ``override``. Blank lines, ``#`` comments,
    an ``export`` prefix and single or double quotes around the value are understood. A missing file
    returns ``{}``.
    """
    values = {}
    if not os.path.isfile(path):
        return values
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, _, value = line.partition("=")
            key = key.strip()
            if key.startswith("export "):
                key = key[len("export "):].strip()
            value = value.strip()
            if value[:1] in ("'", '"') and value.find(value[0], 1) > 0:
                value = value[1:value.find(value[0], 1)]  # quoted: up to the closing quote, comment or not
            elif " #" in value:
                value = value.split(" #", 1)[0].rstrip()
            values[key] = value
            if override or key not in os.environ:
                os.environ[key] = value
    return values


def _images(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__image__"}:
            from PIL import Image

            with Image.open(value["__image__"]) as im:
                return im.convert("RGB")
        return {k: _images(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_images(v) for v in value]
    return value


def serve(load: Callable[[dict, str], Any], generate: Callable[[Any, dict, int], Any]) -> None:
    """Answer protocol messages on stdin until ``exit`` or end of input."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # upstream prints now land in the log, not in the protocol stream
    sys.stdout = sys.stderr

    def reply(obj: dict) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    state = None
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        msg = json.loads(line)
        op = msg.get("op")
        if op == "exit":
            break
        try:
            if op == "load":
                state = load(msg.get("settings") or {}, msg.get("device") or "cuda")
                reply({"ok": True})
            elif op == "generate":
                request = _images(msg["request"])
                seed = int(request.pop("seed", 0))
                image = generate(state, request, seed)
                image.convert("RGB").save(msg["out"])
                reply({"ok": True, "info": {"size": list(image.size)}})
            else:
                reply({"ok": False, "kind": "error", "error": f"unknown op {op!r}"})
        except ImportError as e:
            traceback.print_exc()
            reply({"ok": False, "kind": "missing_dependency", "error": f"{type(e).__name__}: {e}"})
        except MissingWeights as e:
            reply({"ok": False, "kind": "missing_weights", "error": str(e)})
        except Exception as e:  # one bad request must not kill the worker
            traceback.print_exc()
            reply({"ok": False, "kind": "error", "error": f"{type(e).__name__}: {e}"})
