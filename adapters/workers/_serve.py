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
