"""Load and save WithAnyone adapter weights under every key layout the project meets.

Public API::

    report = load_adapter_weights(adapter, "withanyone.safetensors")        # strict, dead keys reported
    adapter = load_adapter_file(path, transformer.config)                    # build + load in one call
    save_adapter(adapter, path)                                              # merged layout + config metadata
    path = resolve_adapter_file("withanyone-flux1-dev")                      # via the weights store

Key layouts (spec §1.11, §4.6):

* ``merged``: the released ``withanyone.safetensors`` (``ipa_arc.*``, ``arcface_in_arc.*``, ``ipa_sig.*``,
  ``arcface_in_sig.*``, ``siglip_in_sig.*``) = our attribute names. It may also hold the dead
  ``siglip_in_arc.*`` tensors (an unused module of the ArcFace training run): dropped and reported.
* ``training-arc`` / ``training-sig``: ``checkpoint-<step>/ipa.safetensors`` of one training run with the
  un-suffixed names ``ipa.*``, ``arcface_in.*``, ``siglip_in.*``; renamed with ``_arc`` / ``_sig``.
* ``kontext``: the Kontext-E file (``ipa.*``, ``arcface_in.*`` and an unused 8-token ``siglip_in.*``):
  the ArcFace-branch renames.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from multiid_bench.errors import BadInputError, MissingDependencyError, MissingWeightsError

if TYPE_CHECKING:
    import torch

    from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter

__all__ = [
    "DEAD_KEY_PREFIXES",
    "TRAINING_RENAMES",
    "AdapterLoadReport",
    "CheckpointFormat",
    "convert_state_dict",
    "detect_format",
    "load_adapter_file",
    "load_adapter_weights",
    "resolve_adapter_file",
    "save_adapter",
]

logger = logging.getLogger(__name__)

CheckpointFormat = Literal["merged", "training-arc", "training-sig", "kontext"]
FORMATS: tuple[str, ...] = ("merged", "training-arc", "training-sig", "kontext")

# Prefix renames from one training run's names to the merged names (what merge_ipa.py does).
TRAINING_RENAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "training-arc": (("ipa.", "ipa_arc."), ("arcface_in.", "arcface_in_arc."), ("siglip_in.", "siglip_in_arc.")),
    "training-sig": (("ipa.", "ipa_sig."), ("arcface_in.", "arcface_in_sig."), ("siglip_in.", "siglip_in_sig.")),
}
TRAINING_RENAMES["kontext"] = TRAINING_RENAMES["training-arc"]

# Trained but never used at inference (spec §1.3): the ArcFace run's stray siglip_in module.
DEAD_KEY_PREFIXES: tuple[str, ...] = ("siglip_in_arc.",)
SIG_BRANCH_PREFIXES: tuple[str, ...] = ("ipa_sig.", "arcface_in_sig.", "siglip_in_sig.")

ADAPTER_WEIGHT_ID = "withanyone-flux1-dev"
ADAPTER_FILENAME = "withanyone.safetensors"


@dataclass(frozen=True)
class AdapterLoadReport:
    """What a load did: the layout, how many tensors were loaded, and which keys were dropped and why."""

    source: str
    format: str
    loaded: int
    dead_keys: tuple[str, ...]
    skipped_branch_keys: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "format": self.format, "loaded": self.loaded,
            "dead_keys": list(self.dead_keys), "skipped_branch_keys": list(self.skipped_branch_keys),
        }


def detect_format(state_dict: Mapping[str, Any]) -> str:
    """Guess the layout from key names (and, for training files, from the shape of ``siglip_in.3``).

    The ArcFace run's dead ``siglip_in`` ends in an (8D, 4D) Linear, the SigLIP run's in a (D, D) one.
    """
    keys = list(state_dict)
    if any(k.startswith(("ipa_arc.", "ipa_sig.")) for k in keys):
        return "merged"
    if any(k.startswith("ipa.") for k in keys):
        w = state_dict.get("siglip_in.3.weight")
        if w is not None and tuple(w.shape)[0] == tuple(w.shape)[1]:
            return "training-sig"
        return "training-arc"
    raise BadInputError(
        "no WithAnyone adapter keys found (expected 'ipa_arc.*' for the merged file or 'ipa.*' for a training "
        f"checkpoint); first keys: {keys[:5]}."
    )


def convert_state_dict(state_dict: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """Rename a checkpoint's keys to the merged (= attribute) names; dead keys are kept, to be reported."""
    if fmt not in FORMATS:
        raise BadInputError(f"unknown checkpoint format {fmt!r}; choose one of {', '.join(FORMATS)} or 'auto'.")
    if fmt == "merged":
        return dict(state_dict)
    renames = TRAINING_RENAMES[fmt]
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        for old, new in renames:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of an adapter ``.safetensors`` file; a missing or unreadable file says how to get it.

    Shared by the loader here and the merge tool (``merge.py``), which read adapter files the same way.
    """
    from safetensors import safe_open

    if not path.is_file():
        raise MissingWeightsError(
            f"adapter file {path} does not exist; download it with 'mbench weights download {ADAPTER_WEIGHT_ID}' or "
            "pass the path of a local withanyone.safetensors."
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as exc:  # safetensors raises its own SafetensorError for truncated/corrupt files
        raise BadInputError(f"{path} is not a readable safetensors file ({exc}); download it again.") from exc


def load_adapter_weights(
    adapter: WithAnyoneAdapter,
    source: str | Path | Mapping[str, Any],
    *,
    fmt: str = "auto",
    strict: bool = True,
    skip_siglip_branch: bool = False,
) -> AdapterLoadReport:
    """Load a checkpoint into ``adapter`` with strict key and shape checking.

    Args:
        adapter: the adapter to fill (its ``siglip_branch`` decides whether ``*_sig`` keys are expected).
        source: a safetensors path or an in-memory state dict.
        fmt: ``"auto"`` or one of ``merged``, ``training-arc``, ``training-sig``, ``kontext``.
        strict: refuse missing keys, unexpected keys (other than the known dead ones) and shape mismatches.
        skip_siglip_branch: drop (and report) ``*_sig`` keys, to run an ArcFace-only adapter from the merged
            file without the 1.4 B SigLIP-branch parameters.

    Raises:
        BadInputError: keys or shapes do not match (message lists them and the fix).
        MissingWeightsError: the file does not exist.
    """
    if isinstance(source, (str, Path)):
        label = str(source)
        raw, _meta = read_safetensors(Path(source))
    else:
        label, raw = "<state dict>", dict(source)
    layout = detect_format(raw) if fmt == "auto" else fmt
    sd = convert_state_dict(raw, layout)
    dead = tuple(sorted(k for k in sd if k.startswith(DEAD_KEY_PREFIXES)))
    skipped: tuple[str, ...] = ()
    if skip_siglip_branch:
        skipped = tuple(sorted(k for k in sd if k.startswith(SIG_BRANCH_PREFIXES)))
    drop = set(dead) | set(skipped)
    sd = {k: v for k, v in sd.items() if k not in drop}
    own = adapter.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    bad_shapes = [
        f"{k}: file {tuple(sd[k].shape)} vs adapter {tuple(own[k].shape)}"
        for k in sorted(set(sd) & set(own)) if tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    if strict and (missing or unexpected or bad_shapes):
        hint = ""
        if any(k.startswith(SIG_BRANCH_PREFIXES) for k in unexpected):
            hint = (" The file has a SigLIP branch: build the adapter with siglip_branch=True or pass "
                    "skip_siglip_branch=True.")
        elif any(k.startswith(SIG_BRANCH_PREFIXES) for k in missing):
            hint = " The file has no SigLIP branch: build the adapter with siglip_branch=False."
        elif bad_shapes:
            hint = " The adapter was sized for another transformer: use WithAnyoneAdapter.from_transformer_config."
        raise BadInputError(
            f"{label} ({layout} layout) does not match the adapter: {len(missing)} missing "
            f"{missing[:6]}, {len(unexpected)} unexpected {unexpected[:6]}, {len(bad_shapes)} shape mismatches "
            f"{bad_shapes[:4]}.{hint}"
        )
    if not strict:
        sd = {k: v for k, v in sd.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    result = adapter.load_state_dict(sd, strict=strict)
    if dead:
        logger.info("%s: dropped %d dead keys (%s...) that inference never uses", label, len(dead), dead[0])
    if skipped:
        logger.info("%s: skipped %d SigLIP-branch keys", label, len(skipped))
    if not strict and (result.missing_keys or result.unexpected_keys):
        logger.warning("%s: non-strict load, %d missing keys", label, len(result.missing_keys))
    return AdapterLoadReport(source=label, format=layout, loaded=len(sd), dead_keys=dead, skipped_branch_keys=skipped)


def save_adapter(adapter: WithAnyoneAdapter, path: str | Path, *, fmt: str = "merged",
                 state_dict: Mapping[str, Any] | None = None) -> Path:
    """Write the adapter as one safetensors file (merged names, or one branch in training names).

    The adapter config is stored in the file's metadata (key ``withanyone_config``) so that
    ``load_adapter_file`` can rebuild the same module without a transformer config. ``state_dict`` replaces
    ``adapter.state_dict()`` (a sharded run passes the gathered full tensors, ``sharding.full_adapter_state``).
    """
    from safetensors.torch import save_file

    source = adapter.state_dict() if state_dict is None else state_dict
    sd = {k: v.detach().contiguous().cpu() for k, v in source.items()}
    if fmt in ("training-arc", "training-sig", "kontext"):
        inverse = [(new, old) for old, new in TRAINING_RENAMES[fmt]]
        kept: dict[str, Any] = {}
        for key, value in sd.items():
            for new, old in inverse:
                if key.startswith(new):
                    kept[old + key[len(new):]] = value
        sd = kept
    elif fmt != "merged":
        raise BadInputError(f"unknown checkpoint format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": f"withanyone-{fmt}", "withanyone_config": json.dumps(dict(adapter.config))}
    save_file(sd, str(path), metadata=meta)
    return path


def load_adapter_file(
    path: str | Path,
    transformer_config: Mapping[str, Any] | None = None,
    *,
    fmt: str = "auto",
    siglip_branch: bool | None = None,
    **config_overrides: Any,
) -> WithAnyoneAdapter:
    """Build an adapter and load ``path`` into it (strict).

    Sizes come from ``transformer_config`` when given, else from the config stored by ``save_adapter``.
    ``siglip_branch=None`` builds the SigLIP branch exactly when the file has one; ``False`` skips it.
    """
    from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter

    raw, meta = read_safetensors(Path(path))
    layout = detect_format(raw) if fmt == "auto" else fmt
    names = convert_state_dict(raw, layout)
    has_sig = any(k.startswith(SIG_BRANCH_PREFIXES) for k in names)
    use_sig = has_sig if siglip_branch is None else bool(siglip_branch)
    if transformer_config is not None:
        adapter = WithAnyoneAdapter.from_transformer_config(
            transformer_config, siglip_branch=use_sig, **config_overrides
        )
    elif "withanyone_config" in meta:
        stored = {k: v for k, v in json.loads(meta["withanyone_config"]).items() if not k.startswith("_")}
        stored.update(siglip_branch=use_sig, **config_overrides)
        adapter = WithAnyoneAdapter(**stored)
    else:
        adapter = WithAnyoneAdapter(siglip_branch=use_sig, **config_overrides)  # released FLUX.1-dev sizes
    load_adapter_weights(adapter, raw, fmt=layout, skip_siglip_branch=has_sig and not use_sig)
    return adapter


def resolve_adapter_file(
    weight_id: str = ADAPTER_WEIGHT_ID,
    filename: str | None = ADAPTER_FILENAME,
    *,
    cache_dir: str | Path | None = None,
    offline: bool | None = None,
) -> Path:
    """Local, verified path of an adapter file from the weights manifest (``reference_model.toml``)."""
    try:
        from multiid_bench.weights import resolve
    except ImportError as exc:  # the store ships with the toolkit; a broken install lands here
        raise MissingDependencyError(
            f"multiid_bench.weights is not importable ({exc}); reinstall multiid-bench, or pass a local path to "
            "the adapter file instead of a weight id."
        ) from exc
    return Path(resolve(weight_id, filename, cache_dir=cache_dir, offline=offline))
