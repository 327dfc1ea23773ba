"""Where each face model and detector runs: the ArcFace backend choice and onnxruntime's providers.

Why a module: a plain ``pip install`` gives the CPU-only ``onnxruntime``, so an ONNX model asked to run on
``cuda`` silently ran on the CPU. ArcFace (w600k_r50, glintr100) now runs on torch by default, converted
from the same ONNX file at load time; SCRFD stays on onnxruntime, on the GPU only when
``onnxruntime-gpu`` provides ``CUDAExecutionProvider``. :func:`runtime_table` says, without loading a
model, which runtime and device each id will use (``mbench doctor`` prints it).

FaceBackend choice for ArcFace (``backend=`` of ``load_face_model``, else ``$MBENCH_FACE_BACKEND``, else
``auto``): ``torch`` (converted, checked against onnxruntime within 1e-4), ``onnxruntime`` (the official
runtime, opt-in), ``auto`` (torch when the graph converts, else onnxruntime with a log line).
"""
from __future__ import annotations

import logging
import os
from typing import Any

from multiid_bench.errors import ConfigError

__all__ = ["FACE_BACKENDS", "ort_providers", "resolve_face_backend", "runtime_table", "torch_device_label"]

log = logging.getLogger(__name__)

FACE_BACKENDS = ("auto", "torch", "onnxruntime")
_ONNX_MODELS = ("arcface", "arcface-glintr100")
_ORT_DETECTORS = ("scrfd", "scrfd-antelopev2")


def resolve_face_backend(backend: str | None) -> str:
    """``backend`` or ``$MBENCH_FACE_BACKEND`` or ``"auto"``, validated."""
    value = backend or os.environ.get("MBENCH_FACE_BACKEND") or "auto"
    if value not in FACE_BACKENDS:
        raise ConfigError(f"face backend must be one of {FACE_BACKENDS}, got {value!r} "
                          "(from backend= or $MBENCH_FACE_BACKEND)")
    return value


def ort_providers(device: str) -> tuple[list[str], int]:
    """onnxruntime providers for ``device`` and the CUDA device index (-1 = CPU).

    ``cuda[:i]`` uses ``CUDAExecutionProvider`` when the installed onnxruntime has it (``onnxruntime-gpu``);
    otherwise it warns once and runs on the CPU.
    """
    import onnxruntime as ort

    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"], int(device.split(":")[1]) if ":" in device else 0
    if device.startswith("cuda"):
        log.warning("onnxruntime has no CUDA provider here (pip install onnxruntime-gpu); running on CPU")
    return ["CPUExecutionProvider"], -1


def torch_device_label(device: str) -> str:
    """``device`` as torch will use it: ``cuda:0 (NVIDIA H200)``, ``cpu``; an unavailable GPU says so."""
    try:
        import torch
    except ImportError:
        return f"{device} (torch not installed)"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return f"{device} requested but CUDA is not available"
        idx = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        return f"cuda:{idx} ({torch.cuda.get_device_name(idx)})"
    return device


def _ort_label(device: str) -> str:
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime not installed"
    gpu = "CUDAExecutionProvider" in ort.get_available_providers()
    if device.startswith("cuda") and gpu:
        return f"onnxruntime CUDAExecutionProvider ({device})"
    if device.startswith("cuda"):
        return "onnxruntime on CPU (no CUDAExecutionProvider: pip install onnxruntime-gpu)"
    return "onnxruntime on CPU"


def runtime_table(device: str = "cpu", backend: str | None = None) -> dict[str, str]:
    """``{model or detector id: "runtime on device"}`` for every id, without loading anything."""
    from multiid_bench.faces.detect import DETECTORS
    from multiid_bench.faces.models import FACE_MODELS

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
            out[mid] = _ort_label(device)
        elif mid in _ONNX_MODELS:
            out[mid] = f"torch on {torch_dev} (converted from ONNX{'; onnxruntime if it does not convert' if chosen == 'auto' else ''})"
        else:
            out[mid] = f"torch on {torch_dev}"
    for did in DETECTORS:
        out[did] = _ort_label(device) if did in _ORT_DETECTORS else f"torch on {torch_dev}"
    return out
