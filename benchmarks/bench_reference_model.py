"""Per-denoising-step overhead of the WithAnyone identity adapter over stock FLUX.

One "step" is one transformer forward (what the sampler calls per step). Stock = the same transformer with no
adapter attached; adapter = hooks attached and an identity conditioning active (boxes from the documented
default layout, ArcFace branch unless --branch both). The one-off ``prepare`` (identity tokens + masks, once
per image) is timed separately. Weights are random: speed does not depend on their values.

    python benchmarks/bench_reference_model.py                       # tiny config, CPU (seconds)
    python benchmarks/bench_reference_model.py --config flux-dev --device cuda --variants arc,both,global
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

TINY = dict(patch_size=1, in_channels=16, num_layers=2, num_single_layers=4, attention_head_dim=16,
            num_attention_heads=4, joint_attention_dim=64, pooled_projection_dim=64, axes_dims_rope=[4, 6, 6],
            guidance_embeds=True)
FLUX_DEV = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                axes_dims_rope=[16, 56, 56], guidance_embeds=True)


def _time(fn, sync) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def _variant_flags(name: str) -> tuple[bool, bool]:
    """(siglip branch on, global injection) for a variant name."""
    return {"arc": (False, False), "both": (True, False), "global": (False, True)}[name]


def main(argv: list[str] | None = None) -> list[dict]:
    import torch
    from diffusers import FluxTransformer2DModel
    from diffusers.utils import logging as diffusers_logging

    from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter
    from multiid_bench.reference_model.layouts import default_layout

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=["tiny", "flux-dev"], default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default=None, help="default: fp32 on CPU, bf16 on GPU")
    ap.add_argument("--height", type=int, default=None, help="default: 256 (tiny) / 1024 (flux-dev)")
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--identities", type=int, default=2)
    ap.add_argument("--variants", default="arc",
                    help="comma list: arc (ArcFace branch, boxes), both (+SigLIP branch), global (no boxes)")
    ap.add_argument("--text-len", type=int, default=None, help="T5 tokens (default 64 tiny / 512 flux-dev)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (the shared CI box has 2 cores)")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    diffusers_logging.set_verbosity_error()
    real = args.config == "flux-dev"
    cfg = FLUX_DEV if real else TINY
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.bfloat16 if device.type == "cuda" else torch.float32)
    height = args.height or (1024 if real else 256)
    width = args.width or height
    text_len = args.text_len or (512 if real else 64)
    repeats = args.repeats or (10 if device.type == "cuda" else 5)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    small = {} if real else {"ca_head_dim": 8, "num_siglip_tokens": 16, "siglip_dim": 32}

    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build directly in the target dtype (no fp32 copy of 12 B parameters)
    try:
        with torch.device(device):
            transformer = FluxTransformer2DModel(**cfg).eval()
    finally:
        torch.set_default_dtype(default_dtype)
    gh, gw = height // 16, width // 16
    L = gh * gw
    g = torch.Generator(device).manual_seed(0)
    ids = torch.zeros(L, 3, device=device)
    ids[:, 1] = torch.arange(L, device=device) // gw
    ids[:, 2] = torch.arange(L, device=device) % gw
    inputs = dict(
        hidden_states=torch.randn(1, L, cfg["in_channels"], generator=g, device=device, dtype=dtype),
        encoder_hidden_states=torch.randn(1, text_len, cfg["joint_attention_dim"], generator=g, device=device,
                                          dtype=dtype),
        pooled_projections=torch.randn(1, cfg["pooled_projection_dim"], generator=g, device=device, dtype=dtype),
        timestep=torch.full((1,), 0.7, device=device, dtype=dtype), img_ids=ids,
        txt_ids=torch.zeros(text_len, 3, device=device), guidance=torch.full((1,), 4.0, device=device, dtype=dtype),
    )

    def step():
        with torch.inference_mode():
            return transformer(**inputs).sample

    results = []
    for variant in args.variants.split(","):
        sig_branch, global_inj = _variant_flags(variant.strip())
        torch.set_default_dtype(dtype)
        try:
            with torch.device(device):
                adapter = WithAnyoneAdapter.from_transformer_config(transformer.config, siglip_branch=sig_branch,
                                                                    **small).eval()
        finally:
            torch.set_default_dtype(default_dtype)
        n = args.identities
        arc = torch.randn(n, 512, generator=g, device=device) * 20
        sig = torch.randn(n, adapter.config.num_siglip_tokens, adapter.config.siglip_dim, generator=g, device=device)
        boxes = None if global_inj else default_layout(n, width, height)
        lam_sig = 0.5 if sig_branch else 0.0

        def prepare(adapter=adapter):  # bound now: the loop deletes the name at the end of each variant
            with torch.inference_mode():
                return adapter.prepare(arc, boxes=boxes, height=height, width=width, lambda_arc=1.0,
                                       lambda_sig=lam_sig, siglip=sig if lam_sig else None)

        # Interleaved: stock (no hooks) and adapter (hooks + active conditioning) alternate, so drift and other
        # load hit both alike; medians are reported.
        cond = prepare()
        stock, with_adapter, prep = [], [], []
        for i in range(args.warmup + repeats):
            t_stock = _time(step, sync)
            adapter.attach(transformer)
            t_prep = _time(prepare, sync)
            with adapter.conditioning(cond):
                t_adapter = _time(step, sync)
            adapter.detach()
            if i >= args.warmup:
                stock.append(t_stock)
                with_adapter.append(t_adapter)
                prep.append(t_prep)
        # Exactness on this device and dtype: lambda = 0 must give the stock output bit for bit.
        ref = step()
        adapter.attach(transformer)
        with adapter.conditioning(adapter.prepare(arc, boxes=boxes, height=height, width=width, lambda_arc=0.0)):
            zero = step()
        adapter.detach()
        s, a = statistics.median(stock), statistics.median(with_adapter)
        rows = cond.token_mask.rows.numel() if cond.token_mask is not None else L
        result = {
            "config": args.config, "variant": variant, "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "dtype": str(dtype).replace("torch.", ""), "threads": args.threads, "height": height, "width": width,
            "image_tokens": L, "text_tokens": text_len, "identities": n, "tokens_in_boxes": rows,
            "transformer_params": sum(p.numel() for p in transformer.parameters()),
            "adapter_params": sum(p.numel() for p in adapter.parameters()),
            "stock_step_ms": 1e3 * s, "adapter_step_ms": 1e3 * a, "overhead_ms": 1e3 * (a - s),
            "overhead_pct": 100.0 * (a - s) / s, "stock_step_ms_min": 1e3 * min(stock),
            "adapter_step_ms_min": 1e3 * min(with_adapter), "prepare_ms_once_per_image": 1e3 * statistics.median(prep),
            "repeats": repeats, "lambda0_bit_exact": bool(torch.equal(ref, zero)),
        }
        print(
            f"{args.config} {result['device_name']} {result['dtype']} {width}x{height} ({L} image tokens, {rows} in "
            f"{n} boxes), variant={variant}: stock {s * 1e3:.2f} ms/step, with adapter {a * 1e3:.2f} ms/step -> "
            f"overhead {result['overhead_ms']:.2f} ms ({result['overhead_pct']:+.1f} %); prepare once "
            f"{result['prepare_ms_once_per_image']:.2f} ms; lambda=0 bit-exact: {result['lambda0_bit_exact']}",
            flush=True,
        )
        results.append(result)
        del adapter
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return results


if __name__ == "__main__":
    main()
