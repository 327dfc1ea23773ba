"""``WithAnyoneKontextPipeline``: face editing on FLUX.1-Kontext-dev (WithAnyone.Ke, paper App. A).

The context image is the base photo with every face box Gaussian-blurred (radius 15; boxes under 100 px on
a side are left sharp, as in the official app), resized to ``16 * floor(size / 16)`` with no Kontext
auto-resize; its tokens (ids ``(1, row, col)``) follow the target tokens, and the identity update touches
the target tokens only (spec §1.10, §2.5). ArcFace branch only; lambda_sig is not offered.

Public API::

    pipe = WithAnyoneKontextPipeline.from_flux_kontext(adapter="ke.safetensors", reference_encoder=enc)
    out = pipe(base_photo, reference_images=[ref_a, ref_b])      # boxes detected on base_photo if not given
    blur_faces(pil_image, boxes)                                  # the context construction, for training data
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import FluxKontextPipeline

from multiid_bench.errors import BadInputError, ConfigError
from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter
from multiid_bench.reference_model.layouts import validate_boxes
from multiid_bench.reference_model.pipeline_base import IdentityPipelineMixin, WithAnyonePipelineOutput
from multiid_bench.reference_model.references import ReferenceEncoder, to_rgb_array
from multiid_bench.reference_model.sampling import schedule_mu

__all__ = ["WithAnyoneKontextPipeline", "blur_faces"]

logger = logging.getLogger(__name__)


def blur_faces(image: Any, boxes: Sequence[Sequence[float]], *, radius: float = 15.0, min_size: int = 100) -> Any:
    """Copy of ``image`` (PIL) with each box region Gaussian-blurred; boxes under ``min_size`` px on either
    side are left as they are (the official rule)."""
    from PIL import ImageFilter

    out = image.convert("RGB").copy()
    for x1, y1, x2, y2 in boxes:
        l, t, r, b = int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2))
        if r - l < min_size or b - t < min_size:
            continue
        region = out.crop((l, t, r, b)).filter(ImageFilter.GaussianBlur(radius))
        out.paste(region, (l, t))
    return out


class WithAnyoneKontextPipeline(IdentityPipelineMixin, FluxKontextPipeline):
    """FluxKontextPipeline + a ``WithAnyoneAdapter`` (ArcFace branch) + optional ``reference_encoder``."""

    _exclude_from_cpu_offload = ["adapter"]
    _optional_components = [*FluxKontextPipeline._optional_components, "adapter"]

    @torch.no_grad()
    def __call__(
        self,
        image: Any,
        prompt: str | None = "",
        *,
        reference_images: Sequence[Any] | None = None,
        arcface_embeddings: Any | None = None,
        boxes: Sequence[Sequence[float]] | None = None,
        blur_radius: float = 15.0,
        min_blur_size: int = 100,
        num_inference_steps: int = 25,
        guidance_scale: float = 4.0,
        lambda_arc: float = 1.0,
        schedule: str = "official",
        seed: int | None = None,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        max_sequence_length: int = 512,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
    ) -> WithAnyonePipelineOutput | tuple:
        r"""Re-render the faces of ``image`` with the reference identities.

        Args:
            image (PIL / uint8 RGB array / path): the base photo; output size = its size floored to 16.
            prompt (`str`, defaults to ""): the edit instruction (the official example uses an empty prompt).
            reference_images / arcface_embeddings: one identity per face box (as in `WithAnyonePipeline`).
            boxes (*optional*): face boxes in base-image pixels, reference order; when omitted, the faces
                detected on `image` (confidence order) are used and their count must equal the references'.
            blur_radius (`float`, 15) / min_blur_size (`int`, 100): context construction (`blur_faces`).
            num_inference_steps (25), guidance_scale (4.0), lambda_arc (1.0), schedule ("official"), seed,
                generator, latents, prompt_embeds, pooled_prompt_embeds, max_sequence_length, output_type,
                return_dict, callback_on_step_end: as in `WithAnyonePipeline`.

        Returns:
            `WithAnyonePipelineOutput`; `boxes` are in output pixels.
        """
        # 0. Check inputs before any model runs.
        base = to_rgb_array(image)
        h0, w0 = base.shape[:2]
        multiple = self.vae_scale_factor * 2
        height, width = (h0 // multiple) * multiple, (w0 // multiple) * multiple
        if height < multiple or width < multiple:
            raise BadInputError(f"the base image ({w0}x{h0}) is smaller than {multiple} px on a side.")
        if prompt is None and prompt_embeds is None:
            prompt = ""
        self.check_inputs(prompt, None, height, width, prompt_embeds=prompt_embeds,
                          pooled_prompt_embeds=pooled_prompt_embeds, max_sequence_length=max_sequence_length)
        n_ids = self.check_identity_inputs(
            reference_images=reference_images, arcface_embeddings=arcface_embeddings, boxes=boxes, layout_image=None,
            height=h0, width=w0, num_inference_steps=num_inference_steps, lambda_arc=lambda_arc, lambda_sig=0.0,
            siglip_features=None, schedule=schedule, require_multiple=False)
        device = self.begin_call(guidance_scale)

        # 1. Face boxes on the base image: given, or detected (confidence order).
        box_source = "given" if boxes is not None else "detected"
        if boxes is None:
            if self.reference_encoder is None:
                raise ConfigError("without boxes the faces are detected on the base image: pass reference_encoder=.")
            faces = self.reference_encoder.detector.detect([base])[0]
            if len(faces) != n_ids:
                raise BadInputError(
                    f"the base image shows {len(faces)} face(s) but {n_ids} references were given; pass one reference "
                    "per face (in detection-confidence order) or pass boxes explicitly."
                )
            boxes = [f.box for f in faces]
        base_boxes = validate_boxes(boxes, n_ids, w0, h0)

        # 2. Identities.
        arc, _ = self._identities(reference_images, arcface_embeddings, None, 0.0)

        # 3. Context: blurred faces, resized to the target size (no Kontext auto-resize).
        from PIL import Image

        context = blur_faces(Image.fromarray(base), base_boxes, radius=blur_radius, min_size=min_blur_size)
        if context.size != (width, height):
            context = context.resize((width, height), Image.LANCZOS)
        sx, sy = width / w0, height / h0
        out_boxes = [(x1 * sx, y1 * sy, x2 * sx, y2 * sy) for x1, y1, x2, y2 in base_boxes]

        # 4. Text.
        batch_size, prompt_embeds, pooled_prompt_embeds, text_ids = self.encode_text(
            prompt, prompt_embeds, pooled_prompt_embeds, device=device, max_sequence_length=max_sequence_length)

        # 5. Latents: noise for the target, VAE latents of the context (ids (1, row, col)).
        generator = self.noise_generator(generator, seed)
        context_tensor = self.image_processor.preprocess(context, height, width)
        latents, context_latents, latent_ids, context_ids = self.prepare_latents(
            context_tensor, batch_size, self.transformer.config.in_channels // 4, height, width,
            prompt_embeds.dtype, device, generator, latents)
        latent_ids = torch.cat([latent_ids, context_ids], dim=0)

        # 6. Timesteps.
        mu = schedule_mu(schedule, height, width, vae_scale_factor=self.vae_scale_factor,
                         scheduler_config=self.scheduler.config)
        timesteps = self.stock_timesteps(num_inference_steps, device, mu)
        self._num_timesteps = len(timesteps)
        guidance = self.guidance_vector(latents, guidance_scale, device)

        # 7. Identity conditioning on the target tokens only, then denoise.
        cond = self.adapter.prepare(arc, boxes=out_boxes, height=height, width=width, lambda_arc=lambda_arc,
                                    lambda_sig=0.0, vae_scale_factor=self.vae_scale_factor)
        latents = self.denoise_with_identity(
            cond, latents=latents, timesteps=timesteps, guidance=guidance, prompt_embeds=prompt_embeds,
            pooled_prompt_embeds=pooled_prompt_embeds, text_ids=text_ids, latent_ids=latent_ids,
            context_latents=context_latents, callback_on_step_end=callback_on_step_end)

        # 8. Decode.
        images = self.decode_latents(latents, height, width, output_type)
        return self.finish_call(images, return_dict, boxes=out_boxes, box_source=box_source, mu=mu,
                                schedule=schedule, lambdas=(float(lambda_arc), 0.0))

    @classmethod
    def from_flux_kontext(cls, flux: str | Path = "black-forest-labs/FLUX.1-Kontext-dev", *,
                          adapter: WithAnyoneAdapter | str | Path, torch_dtype: torch.dtype | None = None,
                          reference_encoder: ReferenceEncoder | None = None,
                          **flux_kwargs: Any) -> WithAnyoneKontextPipeline:
        """A diffusers Kontext folder / hub id + a Kontext-E adapter file (``ipa.*``/``arcface_in.*`` keys)."""
        return cls.from_base(
            FluxKontextPipeline, flux, adapter=adapter, torch_dtype=torch_dtype, reference_encoder=reference_encoder, siglip_branch=False,
            missing_hint=("FLUX.1-Kontext weights not available at {flux} ({exc}). Accept the licence on the Hub, "
                          "log in and run 'hf download black-forest-labs/FLUX.1-Kontext-dev', or pass "
                          "a local diffusers folder."), **flux_kwargs)
