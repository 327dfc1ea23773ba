"""Where each face model and detector will run, for ``mbench doctor``: one line per id, nothing loaded.

Why its own module: the table lists every id of the detector and face-model registries, and those
registries' loaders read :mod:`multiid_bench.faces.runtime` (providers, backend choice); keeping the
table here, above both, keeps the imports one-way.
"""
from __future__ import annotations

from typing import Any

from multiid_bench.faces.detect import DETECTORS
from multiid_bench.faces.models import FACE_MODELS
from multiid_bench.faces.runtime import ort_label, resolve_face_backend, torch_device_label

__all__ = ["runtime_table"]

_ONNX_MODELS = ("arcface", "arcface-glintr100")
_ORT_DETECTORS = ("scrfd", "scrfd-antelopev2")


def runtime_table(device: str = "cpu", backend: str | None = None) -> dict[str, str]:
    """``{model or detector id: "runtime on device"}`` for every id, without loading anything."""
    chosen = resolve_face_backend(backend)
    torch_dev = torch_device_label(device)
    out: dict[str, Any] = {}
    for mid in FACE_MODELS:
        if mid == "dlib":
            try:
                import dlib

                out[mid] = "dlib on " + ("CUDA" if getattr(dlib, "DLIB_USE_CUDA", False) else "CPU")
            except ImportError:
                out[mid] = "dlib not installed"
        elif mid in _ONNX_MODELS and chosen == "onnxruntime":
            out[mid] = ort_label(device)
        elif mid in _ONNX_MODELS:
            out[mid] = f"torch on {torch_dev} (converted from ONNX{'; onnxruntime if it does not convert' if chosen == 'auto' else ''})"
        else:
            out[mid] = f"torch on {torch_dev}"
    for did in DETECTORS:
        out[did] = ort_label(device) if did in _ORT_DETECTORS else f"torch on {torch_dev}"
    return out
