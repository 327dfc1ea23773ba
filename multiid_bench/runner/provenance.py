"""What a number was made with: package versions and the machine, recorded in ``results.json``.

Nothing here imports torch or a model library: versions come from package metadata, the GPU from torch
only when torch is already imported (a run that scored on GPU has it), and the git commit from the
checkout's ``.git`` files (no subprocess). Secrets on the command line (``--api-key X``, ``token=X``) are
redacted before the command is written.
"""
from __future__ import annotations

import platform
import re
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

__all__ = ["environment", "package_versions", "redact_argv", "utc_now"]

#: Every package that can move a number (decoders, detectors, embedders, scorers, data, statistics).
PACKAGES = ("numpy", "scipy", "pandas", "torch", "torchvision", "onnxruntime", "onnxruntime-gpu", "insightface",
            "facenet-pytorch", "dlib-bin", "open_clip_torch", "transformers", "diffusers", "datasets",
            "huggingface_hub", "pillow", "opencv-python", "scikit-image", "safetensors")
_SECRET = re.compile(r"(key|token|secret|password|passwd|auth)", re.IGNORECASE)


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_versions() -> dict[str, str | None]:
    """Versions of the packages that can move a number (None = not installed); no imports."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def redact_argv(argv: Sequence[str]) -> list[str]:
    """The command line with the value of every secret-looking option or ``key=value`` replaced by ``***``.

    Example:
        >>> redact_argv(["mbench", "generate", "--api-key", "sk-1", "-S", "token=abc", "--seed", "3"])
        ['mbench', 'generate', '--api-key', '***', '-S', 'token=***', '--seed', '3']
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
        elif arg.startswith("-") and _SECRET.search(arg):
            name, eq, _ = arg.partition("=")
            out.append(f"{name}=***" if eq else arg)
            hide_next = not eq
        elif "=" in arg and _SECRET.search(arg.partition("=")[0]):
            out.append(arg.partition("=")[0] + "=***")
        else:
            out.append(arg)
    return out


def git_commit(start: Path | None = None) -> str | None:
    """The commit of the checkout this package runs from (None for an installed wheel)."""
    for parent in (start or Path(__file__)).resolve().parents:
        git = parent / ".git"
        if (git / "HEAD").is_file():
            ref = (git / "HEAD").read_text(encoding="utf-8").strip()
            if not ref.startswith("ref: "):
                return ref  # detached HEAD
            name = ref[5:]
            if (git / name).is_file():
                return (git / name).read_text(encoding="utf-8").strip()
            packed = (git / "packed-refs").read_text(encoding="utf-8") if (git / "packed-refs").is_file() else ""
            return next((ln.split()[0] for ln in packed.splitlines() if ln.endswith(" " + name)), None)
    return None


def _gpu() -> dict[str, Any]:
    torch = sys.modules.get("torch")  # only when the run imported it: recording must not load torch
    if torch is None or not torch.cuda.is_available():
        return {"gpu": None, "cuda": None, "driver": None}
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    driver = None
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        driver = str(pynvml.nvmlSystemGetDriverVersion())
    except Exception:  # optional: the driver version is nice to have, never worth failing a run
        driver = None
    return {"gpu": names, "cuda": torch.version.cuda, "driver": driver}


def environment(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Toolkit version, git commit, command line (redacted), OS, Python, GPU/CUDA/driver when present."""
    from multiid_bench._version import __version__

    return {"mbench_version": __version__, "git_commit": git_commit(),
            "command": redact_argv(list(sys.argv if argv is None else argv)),
            "os": platform.platform(), "python": platform.python_version(), **_gpu()}
