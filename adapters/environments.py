"""Reproducible worker environments: what ``mbench setup-env NAME`` builds, and where adapters find it.

Why: each worker adapter runs upstream code whose pins conflict with the toolkit's and with each other
(docs/adapters.md section 5). An environment here is (1) the upstream repository at a pinned commit, (2) a
virtualenv with a lock file shipped in this package (``adapters/envs/<lock>.txt``, exact versions resolved
against PyPI for the stated Python), (3) an import check of the worker script's entry points, and (4) a
record in the user's mbench config (``envs.json``) that :class:`~multiid_bench.adapters._worker.WorkerAdapter`
reads, so ``mbench generate --model NAME`` needs no flags afterwards.

Nothing here imports torch. Building runs subprocesses (git, uv or ``python -m venv``, pip); the plan is
data (:class:`Step`), so ``--dry-run`` prints exactly what would run and the tests check it without network.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from multiid_bench.errors import ConfigError

__all__ = ["ENVS_DIR", "SPECS", "WORKERS_DIR", "EnvSpec", "Step", "config_path", "env_record", "lock_path", "read_records",
           "spec_for", "write_record"]

ENVS_DIR = Path(__file__).resolve().parent / "envs"
#: The worker scripts (``adapters/workers/``) each isolated environment runs; here, below ``_worker.py``, because
#: the setup steps put them on the import check's path too.
WORKERS_DIR = Path(__file__).resolve().parent / "workers"
CONFIG_FILE = "envs.json"


@dataclass(frozen=True)
class EnvSpec:
    """One worker adapter's environment.

    Attributes:
        name: adapter name (``mbench setup-env NAME``).
        repo / commit: upstream GitHub repository and the full commit the adapter follows.
        python: the Python minor version the lock file was resolved for.
        lock: lock file name under ``adapters/envs/``.
        imports: the worker's entry-point imports, run in the new environment from the checkout.
        gpu: GPU / CUDA needs of the locked torch build and the model (what a user must have).
        shares: another adapter whose environment this one reuses (same repo, same lock); both are recorded.
        notes: what the lock deviates from upstream and why; weights to fetch afterwards.
    """

    name: str
    repo: str
    commit: str
    python: str
    lock: str
    imports: tuple[str, ...]
    gpu: str
    shares: str | None = None
    notes: str = ""
    extra_records: tuple[str, ...] = field(default=())

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}.git"

    @property
    def archive_url(self) -> str:
        return f"https://codeload.github.com/{self.repo}/tar.gz/{self.commit}"


_FLUX_GPU = ("CUDA GPU with >= 40 GB for bf16 FLUX.1-dev (24 GB with offload / fp8); the locked torch wheel "
             "from PyPI bundles CUDA 12.x runtime libraries (NVIDIA driver >= 525)")
SPECS: dict[str, EnvSpec] = {s.name: s for s in (
    EnvSpec("uno", "bytedance/UNO", "d305981b9e301315b5c110aef9c7eed827457858", "3.10", "uno.txt",
            ("from uno.flux.pipeline import UNOPipeline, preprocess_ref",), _FLUX_GPU + "; torch 2.4.0 (cu121)",
            notes="UNO requirements.txt pins (torch 2.4.0, diffusers 0.30.1, transformers 4.43.3); gradio and "
                  "the training extras left out; huggingface-hub < 0.26 for diffusers 0.30.1.",
            extra_records=("umo",)),
    EnvSpec("umo", "bytedance/UNO", "d305981b9e301315b5c110aef9c7eed827457858", "3.10", "umo.txt",
            ("from uno.flux.pipeline import UNOPipeline, preprocess_ref",), _FLUX_GPU + "; torch 2.4.0 (cu121)",
            shares="uno", notes="UMO-UNO runs UNO's code with bytedance-research/UMO's UMO_UNO.safetensors "
                                "(bytedance/UMO aada3dc has UNO as a submodule); same environment as uno."),
    EnvSpec("uso", "bytedance/USO", "b6784d70956754725663b1c73b74a0db18be9446", "3.10", "uso.txt",
            ("from transformers import SiglipImageProcessor, SiglipVisionModel",
             "from uso.flux.pipeline import USOPipeline, preprocess_ref"), _FLUX_GPU + "; torch 2.4.0 (cu121)",
            notes="USO requirements.txt pins without deepspeed/gradio/CLIP-git (inference does not use them); "
                  "weights: 'cp example.env .env && python weights/downloader.py' in the checkout."),
    EnvSpec("dreamo", "bytedance/DreamO", "461e35ba6b068f42ca53b43f289b3d91b7f911cd", "3.10", "dreamo.txt",
            ("from dreamo_generator import Generator",),
            _FLUX_GPU + "; torch 2.6.0 (cu124); 24 GB cards need quant='int8'",
            notes="DreamO requirements.txt pins; its facexlib fork (git) replaced by PyPI facexlib 0.3.0, which "
                  "has the same retinaface/parsing entry points (an assumption: the fork's changes are not "
                  "checked here); gradio/spaces left out."),
    EnvSpec("omnigen2", "VectorSpaceLab/OmniGen2", "0f72fa92564d9f8ba76f53fcc3c05aca2372458f", "3.10", "omnigen2.txt",
            ("from omnigen2.models.transformers.transformer_omnigen2 import OmniGen2Transformer2DModel",
             "from omnigen2.pipelines.omnigen2.pipeline_omnigen2 import OmniGen2Pipeline"),
            "CUDA GPU with ~17 GB (README) for bf16; torch 2.6.0 (cu124, driver >= 525); flash-attn optional",
            notes="OmniGen2 requirements.txt (torch 2.6.0, transformers 4.51.3); wandb/ipykernel/ninja left out; "
                  "diffusers < 0.34 (the repository predates 0.34)."),
    EnvSpec("umo-omnigen2", "VectorSpaceLab/OmniGen2", "0f72fa92564d9f8ba76f53fcc3c05aca2372458f", "3.10",
            "umo-omnigen2.txt",
            ("from omnigen2.models.transformers.transformer_omnigen2 import OmniGen2Transformer2DModel",
             "from omnigen2.pipelines.omnigen2.pipeline_omnigen2 import OmniGen2Pipeline",
             "from peft import LoraConfig", "from safetensors.torch import load_file"),
            "as omnigen2 (~17 GB bf16; torch 2.6.0 cu124)",
            notes="omnigen2's lock + peft for UMO's rank-512 LoRA."),
    EnvSpec("uniportrait", "junjiehe96/UniPortrait", "65079d3820705ec701b623d780909f92e00c42f3", "3.10",
            "uniportrait.txt",
            ("from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, StableDiffusionControlNetPipeline",
             "from insightface.app import FaceAnalysis", "from insightface.utils import face_align",
             "from uniportrait.uniportrait_pipeline import UniPortraitPipeline",
             "from uniportrait.uniportrait_attention_processor import attn_args", "import cv2"),
            "CUDA GPU with ~8 GB (SD1.5 fp16); torch 2.4.1 (cu121, driver >= 525); CPU works for an import check",
            notes="UniPortrait's requirements.txt is unpinned and fails with current diffusers; pinned to "
                  "diffusers 0.30.3 / transformers 4.44.2 / huggingface-hub 0.25.2 (contemporary with 65079d3). "
                  "controlnet_aux only for pose='gt' (not locked)."),
    EnvSpec("instantid", "instantX-research/InstantID", "2145b67f9607da6234702063692330185f374486", "3.10",
            "instantid.txt",
            ("from diffusers.models import ControlNetModel", "from insightface.app import FaceAnalysis",
             "from pipeline_stable_diffusion_xl_instantid import StableDiffusionXLInstantIDPipeline, draw_kps",
             "import cv2"),
            "CUDA GPU with 16-24 GB (SDXL fp16; maintainer: 24 GB suggested); torch 2.4.1 (cu121, driver >= 525)",
            notes="Not the toolkit's environment: the repository pipeline fails to import with current diffusers. "
                  "Pinned to diffusers 0.30.3 (the gradio demo's 0.25.1 + torch 2.0.0 cu117 do not support "
                  "Hopper GPUs); antelopev2 must be placed by hand in models/antelopev2."),
    EnvSpec("id-patch", "bytedance/ID-Patch", "099ad14e3db01f3d0739db9e3b25d0d5df31a941", "3.9", "id-patch.txt",
            ("import facexlib.recognition", "import tensorflow as tf", "from modules.inferencer import IDPatchInferencer",
             "from mtcnn import MTCNN", "from rtmlib import Body", "from utils.draw_condition import draw_openpose_from_mmpose"),
            "CUDA GPU with ~16-20 GB (SDXL); torch 2.1.2 (cu121, driver >= 525); TensorFlow 2.17 (MTCNN) "
            "on the CPU is enough",
            notes="ID-Patch requirements.txt exactly (Python 3.9) + huggingface-hub < 0.26 for diffusers 0.30.3."),
    EnvSpec("infiniteyou", "bytedance/InfiniteYou", "aaa6ea5f75ba2ff58b9025fa7df45e4a139ed717", "3.10",
            "infiniteyou.txt", ("from pipelines.pipeline_infu_flux import InfUFluxPipeline",),
            "CUDA GPU with 43 GB (README; 30 GB with cpu offload, 16-24 GB with 8-bit); torch 2.6.0 (cu124)",
            notes="InfiniteYou requirements.txt pins; gradio and pillow plugins left out."),
    EnvSpec("pulid-flux", "ToTheBeginning/PuLID", "1aa2fc7df4bf51080df39f355f9abdc1cbfefbaa", "3.10", "pulid-flux.txt",
            ("from app_flux import FluxGenerator",),
            _FLUX_GPU + "; torch 2.4.1 (cu121)",
            notes="PuLID requirements.txt with torch 2.4.1 instead of 2.0.1 (its fp8 notes need >= 2.4.1, and "
                  "2.0.1 cu117 wheels do not support Hopper); diffusers 0.25.0 needs huggingface-hub 0.25.2."),
)}


def spec_for(name: str) -> EnvSpec:
    """The environment spec for a worker adapter name or alias; ConfigError listing the choices otherwise."""
    key = name
    if key not in SPECS:
        try:
            from multiid_bench.adapters import ADAPTERS

            key = ADAPTERS.canonical(name) if hasattr(ADAPTERS, "canonical") else ADAPTERS.aliases().get(name, name)
        except Exception:  # pragma: no cover - registry problems surface elsewhere
            key = name
    if key not in SPECS:
        raise ConfigError(f"no worker environment for {name!r}; 'mbench setup-env' knows: {', '.join(sorted(SPECS))} "
                          "(diffusers and API adapters use the toolkit's environment: pip install 'multiid-bench[EXTRA]')")
    return SPECS[key]


def lock_path(spec: EnvSpec) -> Path:
    return ENVS_DIR / spec.lock


def read_lock(spec: EnvSpec) -> list[str]:
    """The lock file's requirement lines (comments and blank lines dropped); follows ``-r other.txt``."""
    lines: list[str] = []
    for raw in lock_path(spec).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            other = line[3:].strip()
            lines += read_lock(EnvSpec(spec.name, spec.repo, spec.commit, spec.python, other, (), ""))
            continue
        lines.append(line)
    return lines


def override_lines(lines: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """Replace locked requirements by name (``torch==2.13.0+cpu`` replaces ``torch==2.4.0``); add new ones."""
    def key(req: str) -> str:
        for sep in ("==", ">=", "<=", "~=", "!=", ">", "<", "[", " ", ";", "@"):
            req = req.split(sep, 1)[0]
        return req.strip().lower().replace("_", "-")

    by_name = {key(o): o for o in overrides}
    out = [by_name.pop(key(line), line) for line in lines]
    return out + list(by_name.values())


# ---- the user's record of built environments ------------------------------------------------------
def config_path() -> Path:
    """``$MBENCH_CONFIG_DIR/envs.json`` > ``$XDG_CONFIG_HOME/multiid-bench/envs.json`` > ``~/.config/...``."""
    if os.environ.get("MBENCH_CONFIG_DIR"):
        return Path(os.environ["MBENCH_CONFIG_DIR"]).expanduser() / CONFIG_FILE
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base).expanduser() / "multiid-bench" / CONFIG_FILE


def read_records() -> dict[str, dict[str, Any]]:
    """Every recorded environment (adapter name -> record); an unreadable file is an error naming it."""
    path = config_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read the environment records {path}: {e}; fix or delete the file "
                          "and rerun 'mbench setup-env NAME'") from e
    return {str(k): dict(v) for k, v in (data.get("envs") or {}).items()}


def env_record(name: str) -> dict[str, Any] | None:
    """The record for adapter ``name`` (``python``, ``repo``, ``commit``, ``lock_sha256``...), or None."""
    return read_records().get(name)


def write_record(names: Sequence[str], record: Mapping[str, Any]) -> Path:
    """Record one environment under each adapter name in ``names`` (atomic rewrite of ``envs.json``)."""
    from multiid_bench._io import atomic_write_bytes

    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    records = read_records()
    for n in names:
        records[n] = dict(record)
    atomic_write_bytes(path, (json.dumps({"version": 1, "envs": records}, indent=2, sort_keys=True) + "\n").encode())
    return path


# ---- the plan ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One action of a build: a command (``argv``) or an internal action (``action`` with ``args``)."""

    what: str
    argv: tuple[str, ...] = ()
    action: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def render(self) -> str:
        if self.argv:
            import shlex

            pre = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.items())
            cmd = " ".join(shlex.quote(a) for a in self.argv)
            where = f"(cd {shlex.quote(self.cwd)} && " if self.cwd else ""
            return f"{where}{pre + ' ' if pre else ''}{cmd}{')' if self.cwd else ''}"
        return f"[{self.action}] " + ", ".join(f"{k}={v}" for k, v in self.args.items())


def lock_sha256(spec: EnvSpec) -> str:
    return hashlib.sha256(lock_path(spec).read_bytes()).hexdigest()


def default_prefix() -> Path:
    from multiid_bench._io import cache_root

    return cache_root() / "envs"


def find_python(version: str) -> str | None:
    """An interpreter for ``version`` (``python3.10`` on PATH, or pyenv's), or None."""
    exe = shutil.which(f"python{version}")
    if exe:
        import subprocess

        try:  # pyenv shims exist for every version but fail for inactive ones
            out = subprocess.run([exe, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True,
                                 timeout=30)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    root = Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser() / "versions"
    if root.is_dir():
        for cand in sorted(root.glob(f"{version}.*"), reverse=True):
            exe_path = cand / "bin" / f"python{version}"
            if exe_path.is_file():
                return str(exe_path)
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    return None


def plan(spec: EnvSpec, prefix: Path, *, source: str | None = None, python: str | None = None,
         overrides: Sequence[str] = (), use_uv: bool | None = None) -> list[Step]:
    """The ordered steps that build ``spec`` under ``prefix/<env>`` (nothing is run here)."""
    env_name = spec.shares or spec.name
    root = Path(prefix).expanduser().resolve() / env_name
    repo_dir, venv = root / "repo", root / "venv"
    vpy = venv / "bin" / "python"
    uv = shutil.which("uv") if use_uv is not False else None
    interp = python or find_python(spec.python) or f"python{spec.python}"
    steps: list[Step] = []
    if source:
        steps.append(Step(f"upstream code from {source} (expected {spec.repo} @ {spec.commit[:7]})", action="copy-source",
                          args={"source": source, "dest": str(repo_dir), "commit": spec.commit}))
    elif shutil.which("git"):
        steps.append(Step(f"clone {spec.repo}", ("git", "clone", "--filter=blob:none", "--no-checkout", spec.url,
                                                 str(repo_dir))))
        steps.append(Step(f"check out the pinned commit {spec.commit[:7]}",
                          ("git", "-C", str(repo_dir), "checkout", "--detach", spec.commit)))
    else:
        steps.append(Step(f"download {spec.repo} @ {spec.commit[:7]} (no git)", action="download-archive",
                          args={"url": spec.archive_url, "dest": str(repo_dir)}))
    if uv:
        steps.append(Step(f"create the venv (uv, Python {spec.python})", (uv, "venv", "--python", interp, str(venv))))
    else:
        steps.append(Step(f"create the venv (Python {spec.python})", (interp, "-m", "venv", str(venv))))
    lock_used = root / "lock-used.txt"
    steps.append(Step("write the lock file used", action="write-lock",
                      args={"lock": str(lock_path(spec)), "dest": str(lock_used), "overrides": list(overrides)}))
    if uv:
        steps.append(Step("install the locked packages", (uv, "pip", "install", "--python", str(vpy), "-r",
                                                          str(lock_used))))
    else:
        steps.append(Step("install the locked packages", (str(vpy), "-m", "pip", "install", "-r", str(lock_used))))
    code = "; ".join(spec.imports) + "; print('import check ok')"
    steps.append(Step("import check of the worker's entry points", (str(vpy), "-c", code), cwd=str(repo_dir),
                      env={"PYTHONPATH": os.pathsep.join([str(repo_dir), str(WORKERS_DIR)])}))
    names = [spec.name, *([spec.shares] if spec.shares else []), *spec.extra_records]
    steps.append(Step("record the environment in " + str(config_path()), action="record",
                      args={"names": sorted(set(names)), "python": str(vpy), "repo": str(repo_dir)}))
    return steps
