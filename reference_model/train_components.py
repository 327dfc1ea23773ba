"""The models a training run needs, loaded once: frozen FLUX transformer + VAE + text encoders, the trainable
identity adapter, the frozen loss ArcFace, and the ``TrainModule`` that DDP wraps.

This module imports torch at load time; only the trainer imports it (never the CLI's ``--help`` path).
Only the adapter is a registered sub-module of ``TrainModule``: DDP then broadcasts and all-reduces just the
adapter, and a checkpoint never copies the 12 B frozen parameters. The transformer is held by reference.
"""
from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from multiid_bench.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from .batches import SampleBuilder
    from .identity_adapter import WithAnyoneAdapter
    from .references import SiglipFaceEncoder
    from .train_config import TrainConfig

__all__ = ["Components", "TrainModule", "build_components", "latent_image_ids", "load_siglip_encoder",
           "reference_siglip", "sample_builder", "siglip_features"]

logger = logging.getLogger(__name__)

# captions -> (prompt_embeds (B, S, D_t), pooled (B, D_p), text_ids (S, 3))
PromptEncoder = Callable[[list[str]], tuple[Any, Any, Any]]


@dataclass
class Components:
    """Everything the training step touches. ``arcface`` is None when both identity losses are off; ``siglip``
    is None unless the SigLIP branch is trained from reference crops (``build_components`` loads it)."""

    transformer: torch.nn.Module
    vae: torch.nn.Module
    encode_prompt: PromptEncoder
    adapter: WithAnyoneAdapter
    arcface: torch.nn.Module | None
    vae_scale_factor: int = 8
    siglip: SiglipFaceEncoder | None = None  # frozen SigLIP tower; loaded only for a "sig" run that encodes crops


def latent_image_ids(height: int, width: int, *, vae_scale_factor: int = 8, device: Any = "cpu",
                     dtype: Any = None) -> torch.Tensor:
    """(L, 3) FLUX image position ids ``(0, row, col)`` for the packed token grid (spec §1.8)."""

    gh, gw = height // (vae_scale_factor * 2), width // (vae_scale_factor * 2)
    ids = torch.zeros(gh, gw, 3)
    ids[..., 1] = torch.arange(gh)[:, None]
    ids[..., 2] = torch.arange(gw)[None, :]
    return ids.reshape(gh * gw, 3).to(device=device, dtype=dtype or torch.float32)


class TrainModule(nn.Module):
    """Adapter (registered) + transformer (referenced): ``forward`` predicts FLUX's velocity (noise − data).

    The identity state is installed with ``adapter.set_conditioning`` for the whole step (forward and
    backward), because gradient checkpointing re-runs the blocks during backward; the trainer clears it.
    """

    def __init__(self, adapter: nn.Module, transformer: nn.Module) -> None:
        super().__init__()
        self.adapter = adapter
        self.__dict__["transformer"] = transformer  # not a sub-module on purpose (see module docstring)

    def forward(self, x_t: torch.Tensor, sigma: torch.Tensor, prompt_embeds: torch.Tensor, pooled: torch.Tensor,
                text_ids: torch.Tensor, img_ids: torch.Tensor, cond_emb: torch.Tensor, boxes: torch.Tensor, *,
                height: int, width: int, lambda_arc: float, guidance: float, siglip: torch.Tensor | None = None,
                lambda_sig: float = 0.0) -> torch.Tensor:
        if siglip is None and lambda_sig == 0.0:  # ArcFace run: the call it always was
            cond = self.adapter.prepare(cond_emb, boxes=boxes, height=height, width=width, lambda_arc=lambda_arc)
        else:  # as the pipeline does at inference (pipeline.py)
            cond = self.adapter.prepare(cond_emb, boxes=boxes, height=height, width=width, lambda_arc=lambda_arc,
                                        lambda_sig=lambda_sig, siglip=siglip)
        self.adapter.set_conditioning(cond)
        t = self.transformer
        g = None
        if getattr(t.config, "guidance_embeds", False):
            g = torch.full((x_t.shape[0],), guidance, device=x_t.device, dtype=x_t.dtype)
        return t(hidden_states=x_t, timestep=sigma.to(x_t.dtype), guidance=g, pooled_projections=pooled,
                 encoder_hidden_states=prompt_embeds, txt_ids=text_ids, img_ids=img_ids, return_dict=False)[0]


def load_siglip_encoder(cfg: TrainConfig, device: Any) -> SiglipFaceEncoder:
    """The frozen SigLIP tower through the inference loader (``references.SiglipFaceEncoder.from_pretrained``):
    ``model.siglip`` (folder / hub id) or, when unset, the weights-store id; in ``model.frozen_dtype``."""
    from .references import SiglipFaceEncoder

    enc = SiglipFaceEncoder.from_pretrained(cfg.model.siglip, device=str(device),
                                            dtype=getattr(torch, cfg.model.frozen_dtype))
    enc.model.requires_grad_(False)
    return enc


def siglip_features(encoder: SiglipFaceEncoder, crops: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, F, S, S, 3) uint8 reference crops -> (B, F, T, C) float32 SigLIP features (zeros for padded faces).

    The crops go through ``encoder`` itself — the inference path's preprocessing (PIL bicubic resize, mean = std
    = 0.5) and forward (no autograd, the tower's dtype) — so training sees exactly the features of inference.
    """
    from PIL import Image

    b, f = crops.shape[:2]
    sel = valid.reshape(-1).bool().cpu()
    flat = crops.reshape(b * f, *crops.shape[2:]).cpu().numpy()
    images = [Image.fromarray(flat[i]) for i in torch.nonzero(sel).flatten().tolist()]
    feats = torch.from_numpy(encoder(images)) if images else None
    t = feats.shape[1:] if feats is not None else encoder_token_shape(encoder)
    out = torch.zeros(b * f, *t, dtype=torch.float32)
    if feats is not None:
        out[sel] = feats
    return out.reshape(b, f, *t)


def encoder_token_shape(encoder: SiglipFaceEncoder) -> tuple[int, int]:
    """(T, C) of the tower's ``last_hidden_state``: (image_size / patch_size)² patch tokens x hidden size."""
    c = encoder.model.config
    return (encoder.image_size // c.patch_size) ** 2, c.hidden_size


def _check_siglip_sizes(adapter: WithAnyoneAdapter, encoder: SiglipFaceEncoder) -> None:
    tokens, width = encoder_token_shape(encoder)
    cfg = adapter.config
    if (cfg.num_siglip_tokens, cfg.siglip_dim) != (tokens, width):
        raise ConfigError(f"the adapter's SigLIP branch expects {cfg.num_siglip_tokens} x {cfg.siglip_dim} tokens, the "
                          f"SigLIP tower gives {tokens} x {width}; build the adapter with num_siglip_tokens="
                          f"{tokens}, siglip_dim={width} or point model.siglip at the matching tower")


def reference_siglip(comp: Components, batch: dict[str, Any]) -> torch.Tensor:
    """(B, F, T, C) SigLIP features of the batch's references: the record's precomputed ``siglip`` or the frozen
    tower on ``ref_crops`` (no autograd, the tower's dtype; zeros for padded faces)."""
    if "siglip" in batch:
        return batch["siglip"].float()
    if "ref_crops" not in batch or comp.siglip is None:
        raise ConfigError("a SigLIP-branch step needs reference crops and a SigLIP encoder (model.branch = 'sig' "
                          "with data.siglip_features = 'encode') or precomputed features ('precomputed')")
    return siglip_features(comp.siglip, batch["ref_crops"], batch["ref_valid"])


def sample_builder(cfg: TrainConfig, bank: Any = None, detector: Any = None) -> SampleBuilder:
    """The run's SampleBuilder: an ArcFace run as always; a SigLIP run also carries each reference's SigLIP input."""
    from .batches import ReferencePhotos, SampleBuilder

    if cfg.model.branch != "sig":
        return SampleBuilder(cfg.data, bank, detector)
    photos = ReferencePhotos(cfg.data.ref_dir) if cfg.data.ref_dir and cfg.data.paired_ratio > 0 else None
    return SampleBuilder(cfg.data, bank, detector, siglip=cfg.data.siglip_features, ref_photos=photos)


def _load_factory(cfg: TrainConfig) -> Callable[[TrainConfig], Components]:
    if cfg.model.factory_path and cfg.model.factory_path not in sys.path:
        sys.path.insert(0, cfg.model.factory_path)
    module_name, _, attr = cfg.model.factory.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"model.factory {cfg.model.factory!r} cannot be imported ({exc}); use 'module:function'"
                          " and set model.factory_path if the module is not on sys.path") from exc


def build_components(cfg: TrainConfig, device: Any) -> Components:
    """Load (or build via ``model.factory``) the models for ``cfg`` and freeze everything but the adapter."""
    if cfg.model.factory:
        comp = _load_factory(cfg)(cfg)
    else:
        comp = _load_flux_components(cfg, device)
    frozen_dtype = getattr(torch, cfg.model.frozen_dtype)
    for module, dtype in ((comp.transformer, frozen_dtype), (comp.vae, frozen_dtype), (comp.arcface, torch.float32)):
        if module is not None:
            module.requires_grad_(False)
            module.eval()
            module.to(device)
            if any(p.dtype != dtype for p in module.parameters()):
                module.to(dtype=dtype)
    adapter = comp.adapter
    if cfg.model.branch == "sig":
        if not adapter.config.siglip_branch:
            raise ConfigError("model.branch = 'sig' but the adapter has no SigLIP branch; build it with "
                              "siglip_branch=True (model.factory)")
        if cfg.data.siglip_features == "encode":
            if comp.siglip is None:
                comp.siglip = load_siglip_encoder(cfg, device)
            comp.siglip.model.requires_grad_(False)
            comp.siglip.model.eval()
            _check_siglip_sizes(adapter, comp.siglip)
            if cfg.model.siglip_matting:  # background -> black before SigLIP (official README, spec §2.2)
                from .matting import MattedSiglipEncoder, load_matting

                src = cfg.model.siglip_matting
                comp.siglip = MattedSiglipEncoder(comp.siglip, load_matting(None if src == "store" else src))
    if cfg.model.init_adapter:
        from .weights import load_adapter_weights, resolve_adapter_file

        src = cfg.model.init_adapter
        path = src if any(c in src for c in "/\\.") else resolve_adapter_file(src)
        report = load_adapter_weights(adapter, path)
        logger.info("adapter initialised from %s (%s)", path, report.to_dict())
    adapter.to(device)
    if any(p.dtype != torch.float32 for p in adapter.parameters()):  # fp32 master weights (autocast computes)
        adapter.float()
    for name, p in adapter.named_parameters():
        p.requires_grad_(name.split(".")[0].endswith("_" + cfg.model.branch))
    adapter.attach(comp.transformer)
    return comp


def _load_flux_components(cfg: TrainConfig, device: Any) -> Components:
    """FLUX.1-dev from a diffusers folder / hub id, the adapter at its size, and the loss ArcFace."""
    try:
        from diffusers import AutoencoderKL, FluxPipeline, FluxTransformer2DModel
    except ImportError as exc:
        raise MissingDependencyError(f"training needs diffusers ({exc}); pip install 'diffusers>=0.32'") from exc
    from .arcface_torch import load_loss_arcface
    from .identity_adapter import WithAnyoneAdapter

    dtype = getattr(torch, cfg.model.frozen_dtype)
    base = cfg.model.base_model
    transformer = FluxTransformer2DModel.from_pretrained(base, subfolder="transformer", torch_dtype=dtype).to(device)
    if cfg.model.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    vae = AutoencoderKL.from_pretrained(base, subfolder="vae", torch_dtype=dtype).to(device)
    text = FluxPipeline.from_pretrained(base, transformer=None, vae=None, torch_dtype=dtype).to(device)

    @torch.no_grad()
    def encode_prompt(captions: list[str]) -> tuple[Any, Any, Any]:
        return text.encode_prompt(prompt=captions, prompt_2=captions, device=device, max_sequence_length=512)

    siglip, sig_sizes = None, {}
    if cfg.model.branch == "sig" and cfg.data.siglip_features == "encode":
        siglip = load_siglip_encoder(cfg, device)
        tokens, width = encoder_token_shape(siglip)
        sig_sizes = {"num_siglip_tokens": tokens, "siglip_dim": width}
    adapter = WithAnyoneAdapter.from_transformer_config(transformer.config, siglip_branch=cfg.model.branch == "sig",
                                                        **sig_sizes)
    arcface = None
    if cfg.loss.lambda_id > 0 or cfg.loss.lambda_cl > 0:
        arcface = load_loss_arcface(cfg.model.loss_arcface, device=str(device))
    return Components(transformer, vae, encode_prompt, adapter, arcface,
                      vae_scale_factor=2 ** (len(vae.config.block_out_channels) - 1), siglip=siglip)
