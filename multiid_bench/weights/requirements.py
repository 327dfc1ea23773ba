"""Preflight for ``mbench train``: every model file and data path a training config needs, checked first.

Why: without the FLUX base model a training run used to end in a diffusers traceback minutes in; a missing
reference bank or data folder failed later still. Here the whole list is built from the config (FLUX in
diffusers layout, the loss ArcFace, the SigLIP tower for a ``sig`` run, the landmark detector, an initial
adapter, the data, the bank, the reference photos) and checked by existence before anything is loaded;
one message (:mod:`multiid_bench.weights.messages`) lists all that is missing, exit 3.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from multiid_bench.weights.messages import MissingFile, missing_error

__all__ = ["FLUX_DIFFUSERS_ID", "FLUX_HUB_ID", "hub_folder_gap", "preflight_train", "train_requirements"]

FLUX_HUB_ID = "black-forest-labs/FLUX.1-dev"
FLUX_DIFFUSERS_ID = "flux1-dev-diffusers"  # the manifest entry of FLUX_HUB_ID's diffusers folder
SIGLIP_WEIGHT_ID = "siglip-base-patch16-256-multilingual"


def _pathlike(text: str) -> bool:
    return text.startswith((".", "/", "~")) or Path(text).expanduser().exists()


def _data(label: str, path: str | Path, why: str = "not found") -> MissingFile:
    return MissingFile(label, "", Path(path).expanduser(), "", "", (), why, kind="data")


def hub_folder_gap(repo: str, probe: str) -> MissingFile | None:
    """A Hub repo id not in the manifests: ``None`` when ``probe`` is in the HF cache, else why not (no network).

    Public: the reference pipeline's offline preflight (``reference_model/pipeline.py``) asks the same question.
    """
    from huggingface_hub import try_to_load_from_cache

    from multiid_bench.weights.hf import hf_hub_cache

    if isinstance(try_to_load_from_cache(repo, probe, cache_dir=str(hf_hub_cache())), str):
        return None
    return MissingFile(repo, probe, hf_hub_cache() / f"models--{repo.replace('/', '--')}", f"hf download {repo}", "",
                       (f"https://huggingface.co/{repo}",), "not in the Hugging Face cache")


def train_requirements(cfg: Any) -> tuple[list[tuple[str, str | None]], list[MissingFile]]:
    """``(weight files [(id, file or None for all)], missing local paths / uncached Hub repos)`` of a TrainConfig."""
    from multiid_bench.faces import detector_weight_ids

    model, data, loss = cfg.model, cfg.data, cfg.loss
    weights: list[tuple[str, str | None]] = []
    other: list[MissingFile] = []
    if not model.factory:  # a factory builds its own (test / custom) models
        base = str(model.base_model)
        if base == FLUX_HUB_ID:
            weights.append((FLUX_DIFFUSERS_ID, None))
        elif _pathlike(base):
            if not (Path(base).expanduser() / "model_index.json").is_file():
                other.append(_data("model.base_model", base, "not a diffusers folder (no model_index.json)"))
        elif (gap := hub_folder_gap(base, "model_index.json")) is not None:
            other.append(gap)
        if loss.lambda_id > 0 or loss.lambda_cl > 0:
            src = str(model.loss_arcface)
            if _pathlike(src) or "/" in src:
                if not Path(src).expanduser().is_file():
                    other.append(_data("model.loss_arcface", src))
            else:
                wid, _, name = src.partition(":")
                weights.append((wid, name or None))
        if model.branch == "sig" and getattr(data, "siglip_features", "encode") == "encode":
            if model.siglip is None:
                weights.append((SIGLIP_WEIGHT_ID, None))
            elif _pathlike(model.siglip):
                if not (Path(model.siglip).expanduser() / "config.json").is_file():
                    other.append(_data("model.siglip", model.siglip, "not a saved model folder (no config.json)"))
            elif (gap := hub_folder_gap(model.siglip, "config.json")) is not None:
                other.append(gap)
            matting = getattr(model, "siglip_matting", None)  # issue 18: optional matting before SigLIP
            if matting == "store":
                weights.append(("birefnet-general-onnx", None))
            elif matting and not Path(matting).expanduser().is_file():
                other.append(_data("model.siglip_matting", matting))
    if model.init_adapter:
        src = str(model.init_adapter)
        if any(c in src for c in "/\\.") or Path(src).exists():
            if not Path(src).expanduser().is_file():
                other.append(_data("model.init_adapter", src, "not found (train the previous phase first)"))
        else:
            weights.append((src, None))
    if data.detector:
        weights += [(wid, None) for wid in detector_weight_ids(data.detector)]
    for i, p in enumerate(data.paths):
        if not Path(p).expanduser().exists():
            other.append(_data(f"data.paths[{i}]", p))
    if data.bank and not Path(data.bank).expanduser().is_file():
        other.append(_data("data.bank", data.bank, "not found (mbench train build-bank)"))
    if data.ref_dir and not Path(data.ref_dir).expanduser().is_dir():
        other.append(_data("data.ref_dir", data.ref_dir))
    return list(dict.fromkeys(weights)), other


def preflight_train(cfg: Any, *, cache_dir: str | Path | None = None, offline: bool | None = None) -> None:
    """Raise one exit-3 error listing everything ``cfg`` needs and lacks, before any model loads.

    Online, when only downloadable weights are missing, they are fetched now (Hub files into the HF cache).
    """
    from multiid_bench.weights import get_store

    store = get_store(cache_dir, offline=offline)
    weights, other = train_requirements(cfg)
    missing = [m for wid, name in weights for m in store.preflight([wid]) if name is None or m.name == name]
    if not missing and not other:
        return
    hub_gaps = [m for m in other if m.kind == "weights"]  # Hub repos outside the manifests: diffusers fetches them
    local = [m for m in other if m.kind == "data"]
    if local or store.offline:
        raise missing_error(missing + hub_gaps + local, offline=store.offline or None, what="training",
                            cache_dir=str(store.root) if cache_dir else None)
    if not missing:
        return
    store.ensure([m.weight_id for m in missing], what="training")
