"""Flow-matching schedule (official vs diffusers mu) and the Euler denoising loop shared by both pipelines.

Spec §2.4: the schedule is ``t_k = shift(linspace(1, 0, steps + 1))`` with
``shift(t) = e^mu / (e^mu + 1/t - 1)`` and mu a linear map of a "sequence length" through
(256 -> 0.5, 4096 -> 1.15). The official inference code feeds ``(W/8)(H/8)/256`` (16 at 512²) instead of
the true token count ``L`` (1024 at 512²), so mu ~ 0.46 at every size. ``schedule="official"`` reproduces
that; ``schedule="diffusers"`` is stock FLUX (true L). The grid ``linspace(1, 1/steps, steps)`` plus the
final 0 that diffusers' ``FlowMatchEulerDiscreteScheduler`` appends is the same grid.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

from multiid_bench.errors import ConfigError

__all__ = ["SCHEDULES", "Schedule", "base_sigmas", "denoise", "flux_mu", "schedule_mu"]

Schedule = Literal["official", "diffusers"]
SCHEDULES: tuple[str, ...] = ("official", "diffusers")


def flux_mu(
    seq_len: float, base_seq_len: int = 256, max_seq_len: int = 4096, base_shift: float = 0.5, max_shift: float = 1.15
) -> float:
    """mu as a linear function of sequence length through (base_seq_len, base_shift), (max_seq_len, max_shift)."""
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return float(seq_len * m + base_shift - m * base_seq_len)


def schedule_mu(
    schedule: str,
    height: int,
    width: int,
    *,
    vae_scale_factor: int = 8,
    scheduler_config: Mapping[str, Any] | None = None,
) -> float:
    """mu for a H x W generation: official quirk ((W/8)(H/8)/256) or diffusers (token count)."""
    cfg = dict(scheduler_config or {})
    line = {
        "base_seq_len": int(cfg.get("base_image_seq_len", 256)), "max_seq_len": int(cfg.get("max_image_seq_len", 4096)),
        "base_shift": float(cfg.get("base_shift", 0.5)), "max_shift": float(cfg.get("max_shift", 1.15)),
    }
    if schedule == "official":
        return flux_mu((width / vae_scale_factor) * (height / vae_scale_factor) / 256.0, **line)
    if schedule == "diffusers":
        tokens = ((height // vae_scale_factor) // 2) * ((width // vae_scale_factor) // 2)
        return flux_mu(tokens, **line)
    raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}.")


def base_sigmas(num_inference_steps: int) -> np.ndarray:
    """Unshifted grid 1 .. 1/steps (the scheduler shifts it with mu and appends the terminal 0)."""
    if num_inference_steps < 1:
        raise ConfigError(f"num_inference_steps must be >= 1, got {num_inference_steps}.")
    return np.linspace(1.0, 1.0 / num_inference_steps, num_inference_steps)


def denoise(
    pipe: Any,
    *,
    latents: Any,
    timesteps: Any,
    guidance: Any,
    prompt_embeds: Any,
    pooled_prompt_embeds: Any,
    text_ids: Any,
    latent_ids: Any,
    context_latents: Any | None = None,
    callback_on_step_end: Callable[..., dict[str, Any]] | None = None,
) -> Any:
    """Euler loop ``x <- x + (t_{k+1} - t_k) v(x, t_k)`` through ``pipe.scheduler`` (no true CFG).

    ``context_latents`` (Kontext) are appended after the target tokens and the prediction is cut back to
    the target tokens. Identity conditioning is whatever the caller activated on the adapter.
    """
    import torch

    pipe.scheduler.set_begin_index(0)
    n_target = latents.shape[1]
    with pipe.progress_bar(total=len(timesteps)) as bar:
        for i, t in enumerate(timesteps):
            pipe._current_timestep = t
            model_in = latents if context_latents is None else torch.cat([latents, context_latents], dim=1)
            timestep = t.expand(latents.shape[0]).to(latents.dtype)
            noise_pred = pipe.transformer(
                hidden_states=model_in,
                timestep=timestep / 1000,
                guidance=guidance,
                pooled_projections=pooled_prompt_embeds,
                encoder_hidden_states=prompt_embeds,
                txt_ids=text_ids,
                img_ids=latent_ids,
                return_dict=False,
            )[0][:, :n_target]
            latents = pipe.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
            if callback_on_step_end is not None:
                out = callback_on_step_end(pipe, i, t, {"latents": latents}) or {}
                latents = out.get("latents", latents)
            bar.update()
    pipe._current_timestep = None
    return latents
