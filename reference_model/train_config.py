"""Frozen training configuration with commented defaults (paper Sec. 5, App. F.1; spec §3-§4, §7).

A TOML file has the sections ``[run]``, ``[optim]``, ``[loss]``, ``[model]``, ``[data]``; every key is a field
below, unknown keys are refused (a typo never silently falls back to a default). The resolved config is
written into every checkpoint.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from multiid_bench.errors import ConfigError

from .batches import SampleConfig

__all__ = ["LossConfig", "ModelConfig", "OptimConfig", "RunConfig", "TrainConfig", "DataConfig", "load_config"]


@dataclass(frozen=True)
class RunConfig:
    output_dir: str = "runs/withanyone"  # checkpoints, metrics.jsonl, final adapter
    seed: int = 42  # every random draw is keyed by (seed, stream position) -> exact resume
    max_steps: int = 20_000  # optimiser steps of this phase
    global_batch: int = 32  # paper: 8 GPUs x 4; must divide by the number of processes
    checkpoint_every: int = 1000  # released trainer: every 1000 steps
    keep_checkpoints: int = 3  # older step-* folders are deleted
    log_every: int = 10
    resume: str = "auto"  # "auto" = latest complete checkpoint in output_dir, "none", or a folder
    mixed_precision: Literal["no", "bf16", "fp16"] = "bf16"  # CPU tests use "no"
    num_workers: int = 2  # DataLoader worker processes (0 = in the main process)
    # "fsdp": shard the adapter, its gradients and AdamW state over the processes (FSDP2, one unit); also on
    # when launched with configs/accelerate/fsdp.yaml. "none": DDP (docs/training.md "Memory plan").
    sharding: Literal["none", "fsdp"] = "none"


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4  # paper F.1 (phase 4: 1e-5)
    weight_decay: float = 0.01  # paper F.1 (the released code used 0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    grad_clip: float = 1.0  # released trainer
    warmup_steps: int = 0  # released: 100 but ignored by its "constant" scheduler; here it takes effect
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr


@dataclass(frozen=True)
class LossConfig:
    convention: Literal["paper", "official"] = "paper"  # naming of t / sign of v (same loss value)
    t_sampling: Literal["uniform", "shifted"] = "uniform"  # paper: t ~ U(0,1); released: shifted grid
    guidance: float = 1.0  # guidance-embedding input during training (released: 1; inference 4)
    lambda_id: float = 0.1  # paper eq. 6, all phases
    lambda_cl: float = 0.1
    tau: float = 0.1  # InfoNCE temperature (released: library default 0.1)
    bank_negatives: int = 4033  # per query; + 63 in-batch at global batch 32 x 2 faces = 4096
    in_batch_negatives: bool = True
    id_gate_sigma: float | None = None  # released: 0.6 (identity losses x1e-5 above it); paper: off
    id_gate_mode: Literal["per_sample", "batch_first"] = "per_sample"
    align_transform: Literal["similarity", "affine"] = "similarity"  # released loss: affine
    # "gt": GT-aligned ID loss (paper eq. 14); "prediction": the prediction is aligned with landmarks that
    # data.detector finds on it (the paper's ablation / released variant A; faces it misses are left out)
    id_alignment: Literal["gt", "prediction"] = "gt"
    lambda_arc: float = 1.0  # ArcFace-branch scale in an "arc" run (paper App. E); a "sig" run uses 0
    lambda_sig: float = 1.0  # SigLIP-branch scale in a "sig" run (released: id_weight 1.0); unused in "arc"


@dataclass(frozen=True)
class ModelConfig:
    base_model: str = "black-forest-labs/FLUX.1-dev"  # diffusers folder or hub id (transformer, vae, text)
    # One branch per run, merged afterwards (spec §1.6, §4.6). "sig" = the SigLIP branch (ipa_sig, arcface_in_sig,
    # siglip_in_sig; 256 + 8 tokens per identity) is built, trained alone (λ_arc = 0) and saved; "arc" never
    # loads SigLIP.
    branch: Literal["arc", "sig"] = "arc"
    # "sig" runs with data.siglip_features = "encode": the frozen SigLIP vision tower (a local save_pretrained
    # folder or hub id); None = weight id siglip-base-patch16-256-multilingual from the weights store.
    siglip: str | None = None
    # SigLIP input matting (official README: use it when the SigLIP weight > 0; the released trainer did not):
    # None = off, "store" = BiRefNet-General ONNX from the weights store (birefnet-general-onnx), or a .onnx path
    siglip_matting: str | None = None
    init_adapter: str | None = None  # previous phase's adapter.safetensors (or a weight id)
    loss_arcface: str = "insightface-antelopev2:glintr100.onnx"  # weight id[:file] or a .onnx/.pth/.safetensors
    frozen_dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    gradient_checkpointing: bool = True  # on the FLUX blocks
    factory: str | None = None  # "module:function" building the components (tests, custom models)
    factory_path: str | None = None  # extra sys.path entry for `factory`


@dataclass(frozen=True)
class DataConfig(SampleConfig):
    paths: tuple[str, ...] = ()  # tar folders / tars / triplet folders / .jsonl files
    weights: tuple[float, ...] | None = None  # mixing weights per path (default: by size)
    bank: str | None = None  # reference-bank safetensors (negatives + paired references)
    detector: str | None = None  # face detector id for GT landmarks when records store none
    ref_dir: str | None = None  # REF_DIR/<name>/<stem>.{jpg,json,npy}: paired-reference photos (SigLIP runs)


@dataclass(frozen=True)
class TrainConfig:
    run: RunConfig = field(default_factory=RunConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def __post_init__(self) -> None:
        if self.run.max_steps < 0 or self.run.global_batch < 1 or self.run.checkpoint_every < 1:
            raise ConfigError("run.max_steps >= 0, run.global_batch >= 1 and run.checkpoint_every >= 1 are required")
        if self.optim.lr <= 0 or self.loss.tau <= 0:
            raise ConfigError("optim.lr and loss.tau must be > 0")
        if self.model.branch == "sig":
            if self.loss.lambda_sig <= 0:
                raise ConfigError("model.branch = 'sig' trains the SigLIP branch: loss.lambda_sig must be > 0 "
                                  "(released: 1.0)")
            if self.data.paired_ratio > 0 and self.data.siglip_features == "precomputed":
                raise ConfigError("data.paired_ratio > 0 with data.siglip_features = 'precomputed': a paired "
                                  "reference is another image, whose SigLIP features no record carries; use "
                                  "siglip_features = 'encode' (crops from data.ref_dir) or paired_ratio = 0")
            if self.data.paired_ratio > 0 and not self.data.ref_dir:
                raise ConfigError("data.paired_ratio > 0 in a SigLIP ('sig') run needs data.ref_dir (the REF_DIR "
                                  "the bank was built from) to crop the paired reference photos")
        if (self.loss.lambda_id > 0 or self.loss.lambda_cl > 0) and not self.data.need_landmarks:
            raise ConfigError("identity losses need GT landmarks: set data.need_landmarks = true or both lambdas 0")
        if self.loss.id_alignment == "prediction" and not self.data.detector:
            raise ConfigError("loss.id_alignment = 'prediction' detects landmarks on the prediction: set "
                              "data.detector (e.g. 'retinaface')")
        if self.loss.lambda_cl > 0 and self.loss.bank_negatives > 0 and not self.data.bank:
            raise ConfigError("loss.bank_negatives > 0 needs data.bank (build it with 'mbench train build-bank'), "
                              "or set loss.bank_negatives = 0 for in-batch negatives only")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "config") -> TrainConfig:
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = set(raw) - set(sections)
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {sorted(unknown)}; allowed: {sorted(sections)}")
        kinds = {"run": RunConfig, "optim": OptimConfig, "loss": LossConfig, "model": ModelConfig, "data": DataConfig}
        built = {}
        for name, kind in kinds.items():
            values = dict(raw.get(name, {}))
            names = {f.name for f in dataclasses.fields(kind)}
            bad = set(values) - names
            if bad:
                raise ConfigError(f"{source}: [{name}] has unknown key(s) {sorted(bad)}; allowed: {sorted(names)}")
            for key in ("paths", "betas", "weights"):
                if isinstance(values.get(key), list):
                    values[key] = tuple(values[key])
            try:
                built[name] = kind(**values)
            except TypeError as exc:
                raise ConfigError(f"{source}: [{name}]: {exc}") from exc
        return cls(**built)

    def replace(self, **sections: dict[str, Any]) -> TrainConfig:
        """A copy with some fields of some sections changed: ``cfg.replace(run={"max_steps": 5})``."""
        return dataclasses.replace(self, **{k: dataclasses.replace(getattr(self, k), **v)
                                            for k, v in sections.items()})


def load_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> TrainConfig:
    """Read a TOML config; relative data/output paths stay relative to the working directory."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"training config {path} not found; see reference_model/configs/phase1.toml")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    return TrainConfig.from_dict(raw, source=str(path))
