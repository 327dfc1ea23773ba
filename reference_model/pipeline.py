"""``WithAnyonePipeline``: FLUX.1-dev text-to-image with WithAnyone identity conditioning (diffusers).

Public API::

    from multiid_bench.reference_model import WithAnyonePipeline, load_withanyone_pipeline

    pipe = load_withanyone_pipeline(device="cuda")     # FLUX.1-dev + withanyone.safetensors + face stack
    out = pipe("two friends laughing in a cafe", reference_images=[a, b], boxes=[[...], [...]], seed=1)
    out.images[0]; out.boxes; out.mu

    # tests / trainers: inject identities and components
    pipe = WithAnyonePipeline(scheduler, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2,
                              transformer, adapter=adapter)
    pipe(prompt, arcface_embeddings=emb, boxes=boxes, height=256, width=256, seed=0)

Inputs are checked (``check_inputs`` and the reference/box steps) before any denoising step: box count vs
reference count, boxes inside the image, a reference without a face, sizes not multiples of 16, lambdas.
Defaults follow the official batch script (spec §2.4): 512², 25 steps, guidance 4.0, the official
mu schedule, lambda_arc 1.0 / lambda_sig 0.0 (the README's recommended ArcFace-only setting).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from diffusers import FluxPipeline

from multiid_bench.errors import ConfigError, MissingWeightsError
from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter
from multiid_bench.reference_model.layouts import boxes_from_layout_photo, default_layout, validate_boxes
from multiid_bench.reference_model.pipeline_base import IdentityPipelineMixin, WithAnyonePipelineOutput
from multiid_bench.reference_model.references import ReferenceEncoder, to_rgb_array
from multiid_bench.reference_model.sampling import official_seq_len, official_sigmas, schedule_mu

# IdentityPipelineMixin and WithAnyonePipelineOutput live in pipeline_base.py; re-exported here.
__all__ = ["IdentityPipelineMixin", "WithAnyonePipeline", "WithAnyonePipelineOutput", "load_withanyone_pipeline"]

logger = logging.getLogger(__name__)


class WithAnyonePipeline(IdentityPipelineMixin, FluxPipeline):
    """FluxPipeline + ``adapter`` (a ``WithAnyoneAdapter`` hooked into ``transformer``) + an optional
    ``reference_encoder`` (face detector + ArcFace model) used when reference images are given."""

    _exclude_from_cpu_offload = ["adapter"]
    _optional_components = [*FluxPipeline._optional_components, "adapter"]

    # ---------------------------------------------------------------------------------- call
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        *,
        reference_images: Sequence[Any] | None = None,
        arcface_embeddings: Any | None = None,
        siglip_features: Any | None = None,
        boxes: Sequence[Sequence[float]] | None = None,
        layout_image: Any | None = None,
        height: int = 512,
        width: int = 512,
        num_inference_steps: int = 25,
        guidance_scale: float = 4.0,
        lambda_arc: float = 1.0,
        lambda_sig: float = 0.0,
        schedule: str = "official",
        numerics: str = "default",
        seed: int | None = None,
        generator: torch.Generator | None = None,
        num_images_per_prompt: int = 1,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        pooled_prompt_embeds: torch.Tensor | None = None,
        max_sequence_length: int = 512,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
    ) -> WithAnyonePipelineOutput | tuple:
        r"""Generate an image in which reference identity i appears inside box i.

        Args:
            prompt (`str` or `list[str]`): the text; or pass `prompt_embeds` + `pooled_prompt_embeds`.
            reference_images (`list` of PIL / uint8 RGB arrays / paths, *optional*): one photo per identity;
                its most confident face is embedded with the `reference_encoder` (glintr100, raw embedding).
            arcface_embeddings (`(N, 512)` array or tensor, *optional*): raw ArcFace embeddings instead of photos.
            siglip_features (`(N, 256, 768)`, *optional*): SigLIP tokens, needed with embeddings when lambda_sig > 0.
            boxes (`list` of `[x1, y1, x2, y2]`, *optional*): one face box per identity in output pixels.
            layout_image (*optional*): a photo whose detected faces (confidence order) give the boxes.
                Neither given: `layouts.default_layout` (documented, deterministic).
            height / width (`int`, defaults to 512): multiples of 16, else an error (no silent resize).
            num_inference_steps (`int`, defaults to 25) and guidance_scale (`float`, defaults to 4.0): as the
                official batch script; FLUX.1-dev's guidance embedding, no true CFG.
            lambda_arc / lambda_sig (`float`, 1.0 / 0.0): branch scales; a zero branch is not computed.
            schedule (`"official"` or `"diffusers"`): mu from (W/8)(H/8)/256 (official quirk, default, to
                reproduce the released outputs) or from the token count (stock FLUX).
            numerics (`"default"` or `"official"`): `"official"` reproduces the released dtype choices step by
                step (fp32 schedule as released, bf16 Euler step, bf16 SigLIP, branches added as released, fp32
                VAE decode, truncated pixels); the default is the more accurate path (fp32 Euler, rounding).
                Both pass the timestep in fp32 (docs/reference_model.md "Numerics").
            seed (`int`, *optional*) / generator: the noise source (a CPU generator seeded with `seed`).
            num_images_per_prompt, latents, prompt_embeds, pooled_prompt_embeds, max_sequence_length,
                output_type (`"pil"`, `"np"`, `"pt"`, `"latent"`), return_dict, callback_on_step_end: as in
                `FluxPipeline` (callback receives and may replace `latents`).

        Returns:
            `WithAnyonePipelineOutput` (or `(images,)` when `return_dict=False`).

        Raises:
            BadInputError / ConfigError: before any denoising step, for any inconsistent input.
        """
        # 0. Check inputs (text side via FluxPipeline.check_inputs, identity side here), before any model runs.
        self.check_inputs(prompt, None, height, width, prompt_embeds=prompt_embeds,
                          pooled_prompt_embeds=pooled_prompt_embeds, max_sequence_length=max_sequence_length)
        n_ids = self.check_identity_inputs(
            reference_images=reference_images, arcface_embeddings=arcface_embeddings, boxes=boxes,
            layout_image=layout_image, height=height, width=width, num_inference_steps=num_inference_steps,
            lambda_arc=lambda_arc, lambda_sig=lambda_sig, siglip_features=siglip_features, schedule=schedule,
            numerics=numerics)
        device = self.begin_call(guidance_scale)

        # 1. Identities: embeddings given, or detected + embedded from the reference photos.
        arc, sig = self._identities(reference_images, arcface_embeddings, siglip_features, lambda_sig, numerics)

        # 2. Boxes: given, from a layout photo, or the default layout.
        if boxes is not None:
            used_boxes, box_source = validate_boxes(boxes, n_ids, width, height), "given"
        elif layout_image is not None:
            if self.reference_encoder is None:
                raise ConfigError("layout_image needs a reference_encoder (its face detector).")
            photo = to_rgb_array(layout_image)
            used_boxes = boxes_from_layout_photo(photo, self.reference_encoder.detector, n_ids, width, height)
            used_boxes, box_source = validate_boxes(used_boxes, n_ids, width, height), "layout_photo"
        else:
            used_boxes, box_source = default_layout(n_ids, width, height), "default"

        # 3. Text.
        batch_size, prompt_embeds, pooled_prompt_embeds, text_ids = self.encode_text(
            prompt, prompt_embeds, pooled_prompt_embeds, device=device, num_images_per_prompt=num_images_per_prompt,
            max_sequence_length=max_sequence_length)

        # 4. Noise latents (CPU generator from `seed` so equal seeds give equal images on any device).
        generator = self.noise_generator(generator, seed)
        latents, latent_ids = self.prepare_latents(
            batch_size * num_images_per_prompt, self.transformer.config.in_channels // 4, height, width,
            prompt_embeds.dtype, device, generator, latents)

        # 5. Timesteps: the scheduler shifts the base grid with mu (official quirk or token count).
        mu = schedule_mu(schedule, height, width, vae_scale_factor=self.vae_scale_factor,
                         scheduler_config=self.scheduler.config)
        sigmas = None
        if numerics == "official":  # the released get_schedule, fp32 torch; no scheduler involved
            seq = (official_seq_len(height, width, self.vae_scale_factor) if schedule == "official"
                   else ((height // self.vae_scale_factor) // 2) * ((width // self.vae_scale_factor) // 2))
            sigmas = official_sigmas(num_inference_steps, seq)
            timesteps = torch.tensor(sigmas[:-1], dtype=torch.float32, device=device) * 1000
        else:
            timesteps = self.stock_timesteps(num_inference_steps, device, mu)
        self._num_timesteps = len(timesteps)
        guidance = self.guidance_vector(latents, guidance_scale, device)

        # 6. Identity conditioning, computed once for all steps.
        cond = self.adapter.prepare(arc, boxes=used_boxes, height=height, width=width, lambda_arc=lambda_arc,
                                    lambda_sig=lambda_sig, siglip=sig, vae_scale_factor=self.vae_scale_factor,
                                    branch_order="official" if numerics == "official" else "sum")

        # 7. Denoise.
        latents = self.denoise_with_identity(
            cond, latents=latents, timesteps=timesteps, guidance=guidance, prompt_embeds=prompt_embeds,
            pooled_prompt_embeds=pooled_prompt_embeds, text_ids=text_ids, latent_ids=latent_ids,
            callback_on_step_end=callback_on_step_end, sigmas=sigmas)

        # 8. Decode.
        images = self.decode_latents(latents, height, width, output_type, numerics)
        return self.finish_call(images, return_dict, boxes=used_boxes, box_source=box_source, mu=mu,
                                schedule=schedule, lambdas=(float(lambda_arc), float(lambda_sig)), numerics=numerics)

    # ---------------------------------------------------------------------------------- loading
    @classmethod
    def from_flux(cls, flux: str | Path = "black-forest-labs/FLUX.1-dev", *, adapter: WithAnyoneAdapter | str | Path,
                  torch_dtype: torch.dtype | None = None, reference_encoder: ReferenceEncoder | None = None,
                  siglip_branch: bool | None = None, **flux_kwargs: Any) -> WithAnyonePipeline:
        """A diffusers FLUX folder / hub id (through the HF cache) + an adapter object or file."""
        return cls.from_base(
            FluxPipeline, flux, adapter=adapter, torch_dtype=torch_dtype, reference_encoder=reference_encoder,
            siglip_branch=siglip_branch,
            missing_hint=("FLUX weights not available at {flux} ({exc}). Accept the FLUX.1-dev licence on the Hub, "
                          "run 'hf auth login' and 'hf download black-forest-labs/FLUX.1-dev', "
                          "or pass a local diffusers folder."), **flux_kwargs)


def _flux_missing(flux: str | Path, *, offline: bool) -> Any:
    """Why the FLUX base model cannot load, as one line of the missing-weights message (``None`` when it can)."""
    from multiid_bench.weights.messages import MissingFile

    path = Path(str(flux)).expanduser()
    if path.exists():
        return None if (path / "model_index.json").is_file() else MissingFile(
            "flux", "", path, "", "", (), "not a diffusers folder (no model_index.json)", kind="data")
    if not offline:
        return None  # diffusers (or the store, for the manifest's FLUX.1-dev) downloads it
    from multiid_bench.weights.requirements import hub_folder_gap

    return hub_folder_gap(str(flux), "model_index.json")


def load_withanyone_pipeline(
    *, flux: str | Path = "black-forest-labs/FLUX.1-dev", adapter: str | Path | None = None, device: str = "cuda",
    torch_dtype: torch.dtype | None = None, siglip: bool = False, cache_dir: str | Path | None = None,
    offline: bool | None = None, siglip_matting: str | Path | bool = False,
) -> WithAnyonePipeline:
    """The released model end to end: FLUX.1-dev, ``withanyone.safetensors`` (weights store unless a path is
    given), SCRFD + glintr100 from ``multiid_bench.faces`` and, with ``siglip=True``, the SigLIP branch.
    ``siglip_matting``: True (weights store) or an ONNX path: reference crops matted onto black before SigLIP
    (``matting.py``; the official README's advice when lambda_sig > 0)."""
    from multiid_bench.reference_model.references import load_reference_encoder, reference_weight_ids
    from multiid_bench.reference_model.weights import ADAPTER_WEIGHT_ID, resolve_adapter_file
    from multiid_bench.weights import get_store, is_offline

    # Every missing file is listed at once, before anything loads, in the toolkit's one missing-weights
    # message: the store's files (adapter, face stack, FLUX.1-dev's diffusers folder in the HF cache) and a
    # FLUX folder / hub id given instead.
    from multiid_bench.weights import missing_error, missing_of
    from multiid_bench.weights.requirements import FLUX_DIFFUSERS_ID, FLUX_HUB_ID

    ids = reference_weight_ids(with_siglip=siglip) + ([] if adapter is not None else [ADAPTER_WEIGHT_ID])
    if siglip and siglip_matting is True:
        from multiid_bench.reference_model.matting import MATTING_WEIGHT_ID

        ids.append(MATTING_WEIGHT_ID)
    ids += [FLUX_DIFFUSERS_ID] if str(flux) == FLUX_HUB_ID else []
    missing: list[Any] = []
    try:
        get_store(cache_dir, offline=offline).ensure(ids, what="the WithAnyone reference model")
    except MissingWeightsError as exc:
        if not missing_of(exc):
            raise
        missing += missing_of(exc)
    flux_problem = None if str(flux) == FLUX_HUB_ID else _flux_missing(flux, offline=is_offline(offline))
    if flux_problem is not None or missing:
        raise missing_error(missing + ([flux_problem] if flux_problem is not None else []),
                            offline=is_offline(offline) or None, what="the WithAnyone reference model")
    if str(flux) == FLUX_HUB_ID:  # the verified snapshot folder at the manifest's commit, from the HF cache
        flux = get_store(cache_dir, offline=offline).resolve(FLUX_DIFFUSERS_ID)
    dtype = torch_dtype or (torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
    path = Path(adapter) if adapter is not None else resolve_adapter_file(cache_dir=cache_dir, offline=offline)
    encoder = load_reference_encoder(device=device if str(device).startswith("cuda") else "cpu", with_siglip=siglip,
                                     cache_dir=cache_dir, offline=offline)
    if siglip and siglip_matting:
        from multiid_bench.reference_model.matting import MattedSiglipEncoder, load_matting

        path = None if siglip_matting is True else siglip_matting
        encoder.siglip = MattedSiglipEncoder(encoder.siglip, load_matting(path, cache_dir=cache_dir, offline=offline))
    pipe = WithAnyonePipeline.from_flux(flux, adapter=path, torch_dtype=dtype, reference_encoder=encoder,
                                        siglip_branch=siglip)
    return pipe.to(device)
