"""Where each face model and detector runs: the ArcFace backend choice and onnxruntime's providers.

Why a module: a plain ``pip install`` gives the CPU-only ``onnxruntime``, so an ONNX model asked to run on
``cuda`` silently ran on the CPU. ArcFace (w600k_r50, glintr100) now runs on torch by default, converted
from the same ONNX file at load time; SCRFD stays on onnxruntime, on the GPU only when
``onnxruntime-gpu`` provides ``CUDAExecutionProvider``. :func:`runtime_table` says, without loading a
model, which runtime and device each id will use (``mbench doctor`` prints it); it lives in
``faces/placement.py``, above the detector and face-model registries it lists (this module is below them).

FaceBackend choice for ArcFace (``backend=`` of ``load_face_model``, else ``$MBENCH_FACE_BACKEND``, else
``auto``): ``torch`` (converted, checked against onnxruntime within 1e-4), ``onnxruntime`` (the official
runtime, opt-in), ``auto`` (torch when the graph converts, else onnxruntime with a log line).
"""
from __future__ import annotations

import logging
import os
from multiid_bench.errors import ConfigError

__all__ = ["FACE_BACKENDS", "ort_label", "ort_providers", "resolve_face_backend", "torch_device_label"]

log = logging.getLogger(__name__)

FACE_BACKENDS = ("auto", "torch", "onnxruntime")


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


def ort_label(device: str) -> str:
    """Where onnxruntime will run on ``device``, in words (``mbench doctor``); never loads a session."""
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
