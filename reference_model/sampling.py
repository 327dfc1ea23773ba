"""Flow-matching schedule (official vs diffusers mu) and the Euler denoising loop shared by both pipelines.

Spec §2.4: the schedule is ``t_k = shift(linspace(1, 0, steps + 1))`` with
``shift(t) = e^mu / (e^mu + 1/t - 1)`` and mu a linear map of a "sequence length" through
(256 -> 0.5, 4096 -> 1.15). The official inference code feeds ``(W/8)(H/8)/256`` (16 at 512²) instead of
the true token count ``L`` (1024 at 512²), so mu ~ 0.46 at every size. ``schedule="official"`` reproduces
that; ``schedule="diffusers"`` is stock FLUX (true L). The grid ``linspace(1, 1/steps, steps)`` plus the
final 0 that diffusers' ``FlowMatchEulerDiscreteScheduler`` appends is the same grid.

Numerics (issue 18, docs/reference_model.md "Numerics"). The transformer always receives sigma in fp32:
diffusers casts it to the model dtype and scales by 1000 itself, which is exactly the official
``timestep_embedding(bf16(t))`` (casting ``1000 sigma`` to bf16 before dividing, as diffusers' FluxPipeline
does, puts 5-15 of 25-50 steps one bf16 step off the official timestep). ``numerics="official"`` also
reproduces the released dtype choices: the schedule computed in fp32 torch as released (``official_sigmas``)
and the Euler update in the latents' dtype (bf16) with a Python-float step; the default keeps diffusers'
fp32 Euler step.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from multiid_bench.errors import ConfigError

__all__ = ["NUMERICS", "SCHEDULES", "Schedule", "base_sigmas", "denoise", "flux_mu", "official_sigmas", "schedule_mu"]

Schedule = Literal["official", "diffusers"]
SCHEDULES: tuple[str, ...] = ("official", "diffusers")
# "default": fp32 Euler step (diffusers), bf16-safe timesteps, model-dtype VAE, rounded pixels;
# "official": the released code's dtype choices step by step (see module docstring and pipeline.py).
NUMERICS: tuple[str, ...] = ("default", "official")


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
    if schedule == "official":  # released: (W // 8) * (H // 8) // 256, integer division
        return flux_mu(official_seq_len(height, width, vae_scale_factor), **line)
    if schedule == "diffusers":
        tokens = ((height // vae_scale_factor) // 2) * ((width // vae_scale_factor) // 2)
        return flux_mu(tokens, **line)
    raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}.")


def official_sigmas(num_inference_steps: int, seq_len: float) -> list[float]:
    """The released ``get_schedule``: ``linspace(1, 0, steps + 1)`` in fp32 torch, shifted with
    ``e^mu / (e^mu + (1/t - 1))`` in fp32, mu = ``m * seq_len + b`` in that operation order; Python floats
    (steps + 1 values, the last 0). ``seq_len`` is what the caller passes (official: ``(W/8)(H/8)//256``)."""
    import torch

    if num_inference_steps < 1:
        raise ConfigError(f"num_inference_steps must be >= 1, got {num_inference_steps}.")
    m = (1.15 - 0.5) / (4096 - 256)
    mu = m * seq_len + (0.5 - m * 256)
    t = torch.linspace(1, 0, num_inference_steps + 1)
    return (math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** 1.0)).tolist()


def official_seq_len(height: int, width: int, vae_scale_factor: int = 8) -> int:
    """The "sequence length" the released inference feeds the mu line: ``(W/8)(H/8) // 256`` (integer)."""
    return (width // vae_scale_factor) * (height // vae_scale_factor) // 256


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
    sigmas: Sequence[float] | None = None,
) -> Any:
    """Euler loop ``x <- x + (t_{k+1} - t_k) v(x, t_k)`` (no true CFG).

    Default: the step is ``pipe.scheduler.step`` (fp32 arithmetic); the transformer gets the scheduler's sigma
    in fp32. ``sigmas`` (steps + 1 Python floats, ``numerics="official"``): the released loop instead, the
    same fp32 sigma in, ``x + (s_{k+1} - s_k) * v`` in the latents' dtype (bf16 at full size).
    ``context_latents`` (Kontext) are appended after the target tokens and the prediction is cut back to
    the target tokens. Identity conditioning is whatever the caller activated on the adapter.
    """
    import torch

    if sigmas is None:
        pipe.scheduler.set_begin_index(0)
        sched_sigmas = pipe.scheduler.sigmas.to(device=latents.device, dtype=torch.float32)
    elif len(sigmas) != len(timesteps) + 1:
        raise ConfigError(f"denoise: {len(sigmas)} sigmas for {len(timesteps)} steps (need steps + 1).")
    n_target = latents.shape[1]
    with pipe.progress_bar(total=len(timesteps)) as bar:
        for i, t in enumerate(timesteps):
            pipe._current_timestep = t
            model_in = latents if context_latents is None else torch.cat([latents, context_latents], dim=1)
            # sigma in fp32: the transformer casts it to its dtype and multiplies by 1000 (= official)
            sigma = sched_sigmas[i] if sigmas is None else torch.tensor(sigmas[i], dtype=torch.float32,
                                                                          device=latents.device)
            noise_pred = pipe.transformer(
                hidden_states=model_in,
                timestep=sigma.expand(latents.shape[0]),
                guidance=guidance,
                pooled_projections=pooled_prompt_embeds,
                encoder_hidden_states=prompt_embeds,
                txt_ids=text_ids,
                img_ids=latent_ids,
                return_dict=False,
            )[0][:, :n_target]
            if sigmas is None:
                latents = pipe.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
            else:  # released: img = img + (t_prev - t_curr) * pred, in the latents' dtype
                latents = latents + (sigmas[i + 1] - sigmas[i]) * noise_pred.to(latents.dtype)
            if callback_on_step_end is not None:
                out = callback_on_step_end(pipe, i, t, {"latents": latents}) or {}
                latents = out.get("latents", latents)
            bar.update()
    pipe._current_timestep = None
    return latents
