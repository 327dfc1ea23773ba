"""Sharded training (FSDP2 through accelerate): full-state checkpoints and the launch environment.

Why: at FLUX.1-dev size the trainable adapter (1.4 B per branch, 2.8 B for both) with fp32 AdamW moments
is ~22-45 GB per process under DDP (docs/training.md "Memory plan"); FSDP shards parameters, gradients and
optimiser state across the processes. Only the adapter is sharded: the frozen FLUX transformer is referenced,
not registered, by ``TrainModule`` (each process holds its own bf16 copy).

The trainer needs nothing else to know about sharding: accelerate picks FSDP from the environment that
``accelerate launch --config_file reference_model/configs/accelerate/fsdp.yaml`` sets, wraps the module with
``fully_shard`` and averages gradients by reduce-scatter (as DDP's all-reduce, so the loss scaling of
``train.py`` holds). What changes is saving: parameters and AdamW state are DTensors, so checkpoints gather
full tensors with ``torch.distributed.checkpoint.state_dict`` (a collective: every rank calls it) and write
the same ``adapter.safetensors`` as a DDP run; the optimiser state is stored by parameter name.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from multiid_bench.errors import ConfigError

__all__ = ["accelerate_env", "full_adapter_state", "is_sharded", "load_sharded", "save_sharded_optimizer",
           "shard_module", "wants_sharding"]

ADAPTER_PREFIX = "adapter."


def wants_sharding(cfg: Any) -> bool:
    """FSDP requested: ``run.sharding = "fsdp"`` or an accelerate FSDP launch (``ACCELERATE_USE_FSDP``)."""
    import os

    return cfg.run.sharding == "fsdp" or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def is_sharded(module_or_acc: Any) -> bool:
    """A module wrapped by FSDP2 (by accelerate or by ``shard_module``), or an accelerator in FSDP mode."""
    from torch.distributed.fsdp import FSDPModule

    if isinstance(module_or_acc, FSDPModule):
        return True
    from accelerate.utils import DistributedType

    return getattr(module_or_acc, "distributed_type", None) == DistributedType.FSDP


def shard_module(module: torch.nn.Module) -> torch.nn.Module:
    """``fully_shard`` the module as one unit (accelerate's FSDP2 ``NO_WRAP``), for CPU / gloo processes where
    accelerate refuses FSDP. Only registered parameters (the adapter) are sharded."""
    from torch.distributed.fsdp import fully_shard

    fully_shard(module, reshard_after_forward=True)
    return module


def _options(**kw: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kw)


def full_adapter_state(module: Any) -> dict[str, torch.Tensor] | None:
    """The adapter's full (unsharded) CPU tensors under FSDP, keyed as ``adapter.state_dict()``; None otherwise.

    A collective under FSDP: every rank must call it (rank 0 then writes)."""
    if not is_sharded(module):
        return None
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    sd = get_model_state_dict(module, options=_options(cpu_offload=True))
    return {k[len(ADAPTER_PREFIX):]: v for k, v in sd.items() if k.startswith(ADAPTER_PREFIX)}


def save_sharded_optimizer(module: Any, opt: Any) -> dict[str, Any]:
    """Full AdamW state keyed by parameter name (collective)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(module, getattr(opt, "optimizer", opt), options=_options(cpu_offload=True))


def load_sharded(module: Any, opt: Any, adapter_file: Path, optimizer_file: Path) -> None:
    """Restore a checkpoint written by a sharded run into the sharded module and optimiser (every rank)."""
    from safetensors.torch import load_file
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    sd = {ADAPTER_PREFIX + k: v for k, v in load_file(str(adapter_file)).items()}
    set_model_state_dict(module, sd, options=_options())
    osd = torch.load(optimizer_file, map_location="cpu", weights_only=True)
    set_optimizer_state_dict(module, getattr(opt, "optimizer", opt), osd, options=_options())


# accelerate config (fsdp_config keys) -> the environment `accelerate launch` exports
_FSDP_KEYS = {
    "fsdp_version": "FSDP_VERSION",
    "fsdp_reshard_after_forward": "FSDP_RESHARD_AFTER_FORWARD",
    "fsdp_state_dict_type": "FSDP_STATE_DICT_TYPE",
    "fsdp_auto_wrap_policy": "FSDP_AUTO_WRAP_POLICY",
    "fsdp_transformer_layer_cls_to_wrap": "FSDP_TRANSFORMER_CLS_TO_WRAP",
    "fsdp_offload_params": "FSDP_OFFLOAD_PARAMS",
    "fsdp_cpu_ram_efficient_loading": "FSDP_CPU_RAM_EFFICIENT_LOADING",
    "fsdp_activation_checkpointing": "FSDP_ACTIVATION_CHECKPOINTING",
}


def accelerate_env(config_file: str | Path) -> dict[str, str]:
    """The FSDP environment ``accelerate launch --config_file config_file`` sets, for local CPU processes
    (``launch.launch_cpu_processes(cfg, n, env=...)``): tests run the shipped config, not a copy of it."""
    import yaml

    path = Path(config_file)
    if not path.is_file():
        raise ConfigError(f"accelerate config {path} not found; see reference_model/configs/accelerate/")
    raw = yaml.safe_load(path.read_text()) or {}
    if raw.get("distributed_type") != "FSDP":
        raise ConfigError(f"{path}: distributed_type is {raw.get('distributed_type')!r}; only FSDP configs map to "
                          "a CPU environment here (DDP needs no environment)")
    env = {"ACCELERATE_USE_FSDP": "true"}
    for key, value in (raw.get("fsdp_config") or {}).items():
        if key not in _FSDP_KEYS:
            raise ConfigError(f"{path}: fsdp_config key {key!r} is not mapped; known: {sorted(_FSDP_KEYS)}")
        env[_FSDP_KEYS[key]] = str(value).lower() if isinstance(value, bool) else str(value)
    return env
