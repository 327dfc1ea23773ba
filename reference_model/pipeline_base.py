"""What the FLUX and Kontext WithAnyone pipelines share: identity checks, the common call steps, loading, output.

Why its own module: ``pipeline.py`` (FLUX.1-dev text-to-image) and ``kontext.py`` (FLUX.1-Kontext face editing)
run the same identity checks, text encoding, seeding, timesteps, conditioned denoising, decoding and base-model
loading; each keeps only its own inputs and latents. Both import this module; it imports neither.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.pipelines.flux.pipeline_flux import retrieve_timesteps
from diffusers.utils import BaseOutput

from multiid_bench.errors import BadInputError, ConfigError, MissingWeightsError
from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter
from multiid_bench.reference_model.layouts import validate_boxes
from multiid_bench.reference_model.references import ReferenceEncoder
from multiid_bench.reference_model.sampling import NUMERICS, SCHEDULES, base_sigmas, denoise

__all__ = ["IdentityPipelineMixin", "WithAnyonePipelineOutput"]


@dataclass
class WithAnyonePipelineOutput(BaseOutput):
    """images: PIL list / array / latents; boxes: the boxes used (output pixels, reference order);
    box_source: "given", "layout_photo" or "default"; mu: the schedule's shift; schedule: its name;
    lambdas: (lambda_arc, lambda_sig); numerics: "default" or "official"."""

    images: Any
    boxes: list[tuple[float, float, float, float]]
    box_source: str
    mu: float
    schedule: str
    lambdas: tuple[float, float]
    numerics: str = "default"


class IdentityPipelineMixin:
    """Identity-side checks and helpers shared by the FLUX and Kontext pipelines."""

    adapter: WithAnyoneAdapter
    reference_encoder: ReferenceEncoder | None

    def __init__(self, scheduler, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2, transformer,
                 adapter: WithAnyoneAdapter | None = None, image_encoder=None, feature_extractor=None,
                 reference_encoder: ReferenceEncoder | None = None) -> None:
        """The FLUX / Kontext components (passed on to the diffusers class after this mixin), the identity
        ``adapter`` hooked into ``transformer``, and an optional ``reference_encoder`` for reference photos."""
        super().__init__(scheduler, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2, transformer,
                         image_encoder=image_encoder, feature_extractor=feature_extractor)
        self._register_identity(adapter, reference_encoder)

    def _register_identity(self, adapter: WithAnyoneAdapter | None, reference_encoder: ReferenceEncoder | None) -> None:
        if adapter is None:
            raise ConfigError(
                f"{type(self).__name__} needs adapter=WithAnyoneAdapter(...) (see load_withanyone_pipeline)."
            )
        self.register_modules(adapter=adapter)
        adapter.attach(self.transformer)
        self.reference_encoder = reference_encoder

    # ---------------------------------------------------------------------------------- checks
    def check_identity_inputs(self, *, reference_images, arcface_embeddings, boxes, layout_image, height, width,
                              num_inference_steps, lambda_arc, lambda_sig, siglip_features, schedule,
                              numerics: str = "default", require_multiple: bool = True) -> int:
        """Validate everything that does not need a model; return the number of identities.

        ``height``/``width`` are the frame the boxes live in (the output, or Kontext's base image).
        """
        multiple = self.vae_scale_factor * 2 if require_multiple else 1
        for name, v in (("height", height), ("width", width)):
            if not isinstance(v, int) or v <= 0 or v % multiple:
                raise BadInputError(f"{name}={v!r} must be a positive multiple of {multiple} (e.g. 512, 768, 1024).")
        if (reference_images is None) == (arcface_embeddings is None):
            raise BadInputError("give exactly one of reference_images (photos) or arcface_embeddings (N, 512).")
        if arcface_embeddings is not None:
            emb = np.asarray(arcface_embeddings.detach().cpu() if isinstance(arcface_embeddings, torch.Tensor)
                             else arcface_embeddings)
            if emb.ndim != 2 or emb.shape[1] != self.adapter.config.arcface_dim or not np.isfinite(emb).all():
                raise BadInputError(
                    f"arcface_embeddings must be finite, shape (N, {self.adapter.config.arcface_dim}); got {emb.shape}."
                )
            n = emb.shape[0]
        else:
            if isinstance(reference_images, (str, Path)) or not isinstance(reference_images, Sequence):
                raise BadInputError("reference_images must be a list (one photo per identity).")
            n = len(reference_images)
            if self.reference_encoder is None:
                raise ConfigError(
                    "reference_images need a reference_encoder (face detector + ArcFace); build the pipeline with "
                    "load_withanyone_pipeline(), pass reference_encoder=, or pass arcface_embeddings."
                )
        if n < 1:
            raise BadInputError("at least one reference identity is needed.")
        if boxes is not None and layout_image is not None:
            raise BadInputError("give boxes or layout_image, not both.")
        if boxes is not None:
            validate_boxes(boxes, n, width, height)
        for name, v in (("lambda_arc", lambda_arc), ("lambda_sig", lambda_sig)):
            if not math.isfinite(float(v)) or float(v) < 0:
                raise ConfigError(f"{name}={v} must be a finite number >= 0.")
        if float(lambda_sig) > 0 and not self.adapter.config.siglip_branch:
            raise ConfigError("lambda_sig > 0 but the adapter has no SigLIP branch (load it with siglip_branch=True).")
        if float(lambda_sig) > 0 and siglip_features is None and arcface_embeddings is not None:
            raise BadInputError("lambda_sig > 0 with arcface_embeddings also needs siglip_features (N, 256, 768).")
        if schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}.")
        if numerics not in NUMERICS:
            raise ConfigError(f"numerics must be one of {', '.join(NUMERICS)}; got {numerics!r}.")
        if num_inference_steps < 1:
            raise ConfigError(f"num_inference_steps must be >= 1, got {num_inference_steps}.")
        return n

    def _identities(self, reference_images, arcface_embeddings, siglip_features, lambda_sig, numerics="default"):
        """(arcface (N, 512), siglip or None) from embeddings or from the reference photos."""
        if arcface_embeddings is None:
            ids = self.reference_encoder.encode(
                list(reference_images), with_siglip=float(lambda_sig) > 0,
                siglip_dtype=torch.bfloat16 if numerics == "official" else None)
            arcface_embeddings = ids.arcface
            siglip_features = ids.siglip if siglip_features is None else siglip_features
        if isinstance(arcface_embeddings, torch.Tensor):
            arcface_embeddings = arcface_embeddings.detach().cpu().numpy()
        arc = torch.as_tensor(np.asarray(arcface_embeddings, dtype=np.float32))
        sig = None if siglip_features is None else torch.as_tensor(np.asarray(siglip_features, dtype=np.float32))
        return arc, sig

    # ---------------------------------------------------------------------------------- shared call steps
    # The FLUX and Kontext pipelines differ in their inputs (boxes, context image) and latents; the steps
    # below are the same in both and live here once.
    def begin_call(self, guidance_scale: float) -> torch.device:
        """Reset the per-call state diffusers' properties read; return the execution device."""
        self._guidance_scale, self._joint_attention_kwargs, self._interrupt = guidance_scale, {}, False
        return self._execution_device

    def encode_text(self, prompt, prompt_embeds, pooled_prompt_embeds, *, device, num_images_per_prompt: int = 1,
                    max_sequence_length: int = 512) -> tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(batch size, prompt_embeds, pooled_prompt_embeds, text_ids)`` from a prompt or given embeddings."""
        batch_size = 1 if isinstance(prompt, str) else (len(prompt) if prompt is not None else prompt_embeds.shape[0])
        prompt_embeds, pooled_prompt_embeds, text_ids = self.encode_prompt(
            prompt=prompt, prompt_2=None, prompt_embeds=prompt_embeds, pooled_prompt_embeds=pooled_prompt_embeds,
            device=device, num_images_per_prompt=num_images_per_prompt, max_sequence_length=max_sequence_length)
        return batch_size, prompt_embeds, pooled_prompt_embeds, text_ids

    @staticmethod
    def noise_generator(generator: torch.Generator | None, seed: int | None) -> torch.Generator | None:
        """``generator``, else a CPU generator seeded with ``seed`` (equal seeds give equal images on any device)."""
        if generator is None and seed is not None:
            generator = torch.Generator("cpu").manual_seed(int(seed))
        return generator

    def stock_timesteps(self, num_inference_steps: int, device, mu: float) -> torch.Tensor:
        """The scheduler's timesteps: the base sigma grid shifted with ``mu`` (diffusers' FLUX path)."""
        timesteps, _ = retrieve_timesteps(self.scheduler, num_inference_steps, device,
                                          sigmas=base_sigmas(num_inference_steps), mu=mu)
        return timesteps

    def guidance_vector(self, latents: torch.Tensor, guidance_scale: float, device) -> torch.Tensor | None:
        """FLUX.1-dev's guidance embedding input (one value per latent), ``None`` for a model without one."""
        if not self.transformer.config.guidance_embeds:
            return None
        return torch.full([latents.shape[0]], guidance_scale, device=device, dtype=torch.float32)

    def denoise_with_identity(self, cond: Any, **denoise_kwargs: Any) -> torch.Tensor:
        """``sampling.denoise`` with the adapter's identity conditioning ``cond`` active for every step."""
        with self.adapter.conditioning(cond):
            return denoise(self, **denoise_kwargs)

    @classmethod
    def from_base(cls, base_cls: Any, flux: str | Path, *, adapter: WithAnyoneAdapter | str | Path,
                  torch_dtype: torch.dtype | None, reference_encoder: ReferenceEncoder | None, missing_hint: str,
                  siglip_branch: bool | None = False, **flux_kwargs: Any) -> Any:
        """This pipeline from a diffusers ``base_cls`` checkpoint (folder or hub id, through the HF cache) and the
        adapter (object or file), cast to the transformer's dtype; absent base weights raise with ``missing_hint``
        (formatted with ``flux`` and ``exc``)."""
        try:
            base = base_cls.from_pretrained(str(flux), torch_dtype=torch_dtype, **flux_kwargs)
        except OSError as exc:
            raise MissingWeightsError(missing_hint.format(flux=flux, exc=exc)) from exc
        if not isinstance(adapter, WithAnyoneAdapter):
            from multiid_bench.reference_model.weights import load_adapter_file

            adapter = load_adapter_file(adapter, base.transformer.config, siglip_branch=siglip_branch)
        adapter = adapter.to(dtype=base.transformer.dtype)
        return cls(**base.components, adapter=adapter, reference_encoder=reference_encoder)

    def finish_call(self, images: Any, return_dict: bool, **output: Any) -> WithAnyonePipelineOutput | tuple:
        """Free offloaded models; the output object (or ``(images,)`` with ``return_dict=False``)."""
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return WithAnyonePipelineOutput(images=images, **output)

    def decode_latents(self, latents: torch.Tensor, height: int, width: int, output_type: str,
                       numerics: str = "default") -> Any:
        """Packed latents -> images (or the latents themselves for ``output_type="latent"``).

        Default: the VAE in its own dtype, pixels rounded (diffusers). ``numerics="official"``: as released,
        the latents go to fp32 and the VAE decodes in fp32 (a bf16 VAE is cast up for the call and back,
        which is exact), then ``uint8(127.5 (clamp(x) + 1))`` truncates instead of rounding."""
        if output_type == "latent":
            return latents
        if numerics != "official":
            latents = self._unpack_latents(latents, height, width, self.vae_scale_factor)
            latents = latents / self.vae.config.scaling_factor + self.vae.config.shift_factor
            image = self.vae.decode(latents.to(self.vae.dtype), return_dict=False)[0]
            return self.image_processor.postprocess(image, output_type=output_type)
        latents = self._unpack_latents(latents.float(), height, width, self.vae_scale_factor)
        latents = latents / self.vae.config.scaling_factor + self.vae.config.shift_factor
        vae_dtype = self.vae.dtype
        try:
            self.vae.to(torch.float32)
            image = self.vae.decode(latents, return_dict=False)[0]
        finally:
            self.vae.to(vae_dtype)
        pixels = (127.5 * (image.clamp(-1, 1) + 1.0)).to(torch.uint8)  # truncation toward zero, as released
        if output_type == "pt":
            return pixels.float() / 255.0
        arr = pixels.permute(0, 2, 3, 1).cpu().numpy()
        if output_type == "np":
            return arr.astype(np.float32) / 255.0
        from PIL import Image

        return [Image.fromarray(a) for a in arr]
