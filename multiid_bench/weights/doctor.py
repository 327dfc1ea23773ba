"""Environment checks behind ``mbench doctor``: packages, devices, cache write access, per-profile weights.

Nothing here downloads or loads a model; package presence is checked with ``find_spec`` so a broken
optional package cannot crash the report.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import tempfile
from collections.abc import Sequence
from typing import Any

__all__ = ["run_checks"]

# python modules each detector / face model imports when it loads
_MODULES = {
    "mtcnn": ["torch", "facenet_pytorch"], "scrfd": ["onnxruntime", "insightface"],
    "scrfd-antelopev2": ["onnxruntime", "insightface"], "retinaface": ["torch", "facexlib"],
    "arcface": ["torch", "onnxruntime", "onnx"], "arcface-glintr100": ["torch", "onnxruntime", "onnx"], "adaface": ["torch"],
    "adaface-ir101": ["torch"], "facenet": ["torch", "facenet_pytorch"],
    "facenet-standard": ["torch", "facenet_pytorch"], "dlib": ["dlib"],
}


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _devices() -> dict[str, Any]:
    out: dict[str, Any] = {"torch": "not installed", "onnxruntime": []}
    try:
        import torch

        if torch.cuda.is_available():
            out["torch"] = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            out["torch"] = ["mps"]
        else:
            out["torch"] = ["cpu only"]
    except Exception as e:  # noqa: BLE001 - a broken torch install is exactly what doctor must report
        out["torch"] = f"import failed: {e}"
    try:
        import onnxruntime

        out["onnxruntime"] = list(onnxruntime.get_available_providers())
    except Exception as e:  # noqa: BLE001
        out["onnxruntime"] = [f"import failed: {e}"]
    return out


def _runs_on() -> dict[str, str]:
    """Runtime and device of each face model / detector on the best local device (no model is loaded)."""
    try:
        import torch

        from multiid_bench.faces.placement import runtime_table

        return runtime_table("cuda" if torch.cuda.is_available() else "cpu")
    except Exception as e:  # noqa: BLE001 - doctor reports, never crashes
        return {"error": f"{type(e).__name__}: {e}"}


def _writable(root: str) -> bool:
    try:
        os.makedirs(root, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".doctor-", delete=True):
            return True
    except OSError:
        return False


def _corrupt_weights(store: Any, weight_ids: Sequence[str]) -> list[str]:
    """Present weight files whose checksum does not match the manifest (files shipped in a package and overrides
    are hashed every time; cached downloads are trusted through their verification stamp, as ``evaluate`` does)."""
    out = []
    for wid in dict.fromkeys(weight_ids):
        for st in store.status(wid):
            if st.state == "corrupt":
                fix = ("pip install --force-reinstall the package that ships it" if st.location == "package"
                       else f"re-fetch: {store.fetch_command(wid)} (or mbench weights verify)")
                out.append(f"{wid}/{st.name}: checksum mismatch at {st.path} ({st.detail}); {fix}")
    return out


def run_checks(cache_dir: str | None, packages: Sequence[str], profile: str = "paper") -> dict[str, Any]:
    """A JSON-friendly report; ``profiles[name]["ready"]`` says whether that face profile can run now.

    ``profile`` (default ``paper``, the default of ``evaluate``) is the one ``mbench doctor`` judges: the
    report's ``ready`` / ``message`` are about it, and the message is the same missing-weights text
    ``evaluate`` would print.
    """
    from multiid_bench.faces.profiles import PROFILES, get_profile
    from multiid_bench.weights import get_store, hf_hub_cache, is_offline
    from multiid_bench.weights.messages import format_missing

    store = get_store(cache_dir)
    report: dict[str, Any] = {
        "packages": {p: _version(p) for p in packages},
        "devices": _devices(),
        "runs_on": _runs_on(),
        "cache": {"root": str(store.root), "writable": _writable(str(store.root)), "hf_hub_cache": str(hf_hub_cache())},
        "offline": is_offline(),
        "profile": profile,
        "profiles": {},
    }
    for name in PROFILES:
        prof = get_profile(name)
        problems = []
        for part in dict.fromkeys([*prof.detectors(), *prof.models()]):
            for mod in _MODULES.get(part, []):
                if importlib.util.find_spec(mod) is None:
                    problems.append(f"{part}: Python package {mod!r} is not installed (pip install {mod})")
        missing = store.preflight(prof.weight_ids())
        problems += [f"{m.weight_id}/{m.name}: {m.reason}; fetch: {m.command}" for m in missing]
        corrupt = _corrupt_weights(store, prof.weight_ids())
        problems += corrupt
        report["profiles"][name] = {
            "ready": not problems, "problems": problems, "weights": prof.weight_ids(),
            "missing_weights": [f"{m.weight_id}/{m.name}" for m in missing], "corrupt_weights": corrupt,
            "message": format_missing(missing, profile=name, offline=is_offline() or None) if missing else "",
        }
    chosen = report["profiles"][profile]
    report["ready"] = chosen["ready"]
    return report
