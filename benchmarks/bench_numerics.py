"""``numerics="official"`` vs the default path of ``WithAnyonePipeline``: image difference and time per step.

Random weights (FLUX transformer, adapter with LayerNorm weights around 1 so the identity update is visible,
VAE), random text embeddings, the same starting noise, two identities in the default layout, bf16. Reports
the uint8 image difference (max, mean, share of differing values, PSNR) and the median wall time of the
denoising loop per step for each path (the official loop replaces the scheduler's fp32 step by a bf16 one).

    python benchmarks/bench_numerics.py                                   # tiny config, CPU, 256², 25 steps
    python benchmarks/bench_numerics.py --config flux-dev --device cuda --size 1024   (GPU, not run here)
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

from bench_reference_model import FLUX_DEV, TINY

VAE_TINY = dict(block_out_channels=[8, 8, 8, 8], layers_per_block=1, latent_channels=4, norm_num_groups=4)
VAE_FLUX = dict(block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=16, norm_num_groups=32)


def build(config: str, device: str, dtype):
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter
    from multiid_bench.reference_model.pipeline import WithAnyonePipeline

    torch.manual_seed(0)
    cfg = TINY if config == "tiny" else FLUX_DEV
    transformer = FluxTransformer2DModel(**cfg).to(device, dtype).eval()
    vcfg = VAE_TINY if config == "tiny" else VAE_FLUX
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, use_quant_conv=False, use_post_quant_conv=False,
                        shift_factor=0.1159, scaling_factor=0.3611, **vcfg).to(device, dtype).eval()
    adapter = WithAnyoneAdapter.from_transformer_config(transformer.config, siglip_branch=False)
    with torch.no_grad():
        for name, p in adapter.named_parameters():
            if (".norm1." in name or ".norm2." in name) and name.endswith("weight"):
                p.add_(1.0)
    adapter = adapter.to(device, dtype).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_image_seq_len=256,
                                                max_image_seq_len=4096, base_shift=0.5, max_shift=1.15)
    return WithAnyonePipeline(scheduler, vae, None, None, None, None, transformer, adapter=adapter)


def main(argv: list[str] | None = None) -> dict:
    import numpy as np
    import torch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=["tiny", "flux-dev"], default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16
    pipe = build(args.config, args.device, dtype)
    pipe.set_progress_bar_config(disable=True)
    t = pipe.transformer.config
    g = torch.Generator().manual_seed(1)
    text_len = 64 if args.config == "tiny" else 512
    emb = dict(prompt_embeds=torch.randn(1, text_len, t.joint_attention_dim, generator=g).to(args.device, dtype),
               pooled_prompt_embeds=torch.randn(1, t.pooled_projection_dim, generator=g).to(args.device, dtype))
    arc = torch.randn(2, 512, generator=g) * 20
    n_tok = (args.size // 16) ** 2
    noise = torch.randn(1, n_tok, t.in_channels, generator=g).to(args.device, dtype)
    run = dict(arcface_embeddings=arc, height=args.size, width=args.size, num_inference_steps=args.steps,
               latents=noise, output_type="np", **emb)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    times: dict[str, list[float]] = {"default": [], "official": []}
    images = {}
    for _ in range(args.repeats):
        for numerics in ("default", "official"):
            step_times: list[float] = []
            last = [time.perf_counter()]

            def tick(p, i, ts, kw, step_times=step_times, last=last):
                sync()
                now = time.perf_counter()
                step_times.append(now - last[0])
                last[0] = now
                return kw

            sync()
            last[0] = time.perf_counter()
            images[numerics] = pipe(numerics=numerics, callback_on_step_end=tick, **run).images[0]
            times[numerics].append(statistics.median(step_times[1:]))
    a = np.round(images["default"] * 255).astype(np.int16)
    b = np.round(images["official"] * 255).astype(np.int16)
    diff = np.abs(a - b)
    mse = float((diff.astype(np.float64) ** 2).mean())
    out = {
        "config": args.config, "device": args.device, "size": args.size, "steps": args.steps, "dtype": "bfloat16",
        "max_abs_uint8": int(diff.max()), "mean_abs_uint8": float(diff.mean()),
        "share_differing": float((diff > 0).mean()),
        "psnr_db": float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse)),
        "ms_per_step_default": 1e3 * statistics.median(times["default"]),
        "ms_per_step_official": 1e3 * statistics.median(times["official"]),
    }
    out["step_overhead"] = out["ms_per_step_official"] / out["ms_per_step_default"] - 1
    # one difference at a time, from the same latents
    lat = {n: pipe(numerics=n, **{**run, "output_type": "latent"}).images for n in ("default", "official")}
    out["latent_max_abs_euler_bf16"] = float((lat["official"].float() - lat["default"].float()).abs().max())

    def u8(img):
        return np.round(np.asarray(img) * 255).astype(np.int16)

    h = w = args.size
    torch.set_grad_enabled(False)
    dec_default = u8(pipe.decode_latents(lat["default"], h, w, "np", "default"))
    dec_official = u8(pipe.decode_latents(lat["default"], h, w, "np", "official"))  # fp32 VAE + truncation
    out["max_abs_uint8_decode_fp32_and_truncation"] = int(np.abs(dec_default - dec_official).max())
    out["mean_abs_uint8_decode_fp32_and_truncation"] = float(np.abs(dec_default - dec_official).mean())
    with torch.no_grad():
        z = pipe._unpack_latents(lat["default"].float(), h, w, pipe.vae_scale_factor)
        z = z / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
        x = pipe.vae.to(torch.float32).decode(z, return_dict=False)[0].clamp(-1, 1)
        pipe.vae.to(dtype)
    rounded = torch.round(127.5 * (x + 1)).to(torch.int16)
    truncated = (127.5 * (x + 1)).to(torch.uint8).to(torch.int16)
    out["mean_abs_uint8_truncation_only"] = float((rounded - truncated).abs().float().mean())
    out["max_abs_uint8_latents_euler_only"] = int(np.abs(
        u8(pipe.decode_latents(lat["official"], h, w, "np", "official")) - dec_official).max())
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
