"""fp32 against reduced precision for the image scorers: CLIP-I / CLIP-T cosines and aesthetic scores.

Real architectures (open_clip ViT-B/16 with QuickGELU; SigLIP so400m-patch14-384 + the v2.5 head), random
weights (the real ones cannot be downloaded here), the same images through both dtypes; the reported number
is the largest absolute per-case difference. On a CPU only bf16 is measured (CPU fp16 kernels are emulated
and not what a GPU does); on CUDA fp16 and bf16.

    python benchmarks/bench_precision.py --images 8
    python benchmarks/bench_precision.py --device cuda --images 64
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _images(n: int, seed: int = 0) -> list[Any]:
    """Smooth random scenes with noise (not pure noise: CLIP features of noise are all alike)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w, h = (int(v) for v in rng.integers(256, 640, 2))
        yy, xx = np.mgrid[0:h, 0:w]
        freq = rng.uniform(2, 12, 3)
        base = np.stack([127 + 120 * np.sin(xx / w * f + yy / h * f * 0.7 + c) for c, f in enumerate(freq)], -1)
        out.append(Image.fromarray(np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--skip-aesthetic", action="store_true", help="SigLIP so400m is ~4 s per image on a small CPU")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    from full_bench_models import image_scorers
    from multiid_bench.scorers.clip import clip_i_scores, clip_t_scores

    low = ["bfloat16"] if args.device == "cpu" else ["float16", "bfloat16"]
    imgs = _images(args.images)
    prompts = [f"a photo of {k} people at a party, number {k}" for k in range(args.images)]
    res: dict[str, Any] = {"device": args.device, "images": args.images, "torch": torch.__version__,
                           "weights": "random (real architectures)"}
    ref = image_scorers(args.device, "float32", "float32", 8)
    ref["clip"].resolve_weights()
    ref["clip"].load(args.device)
    g32, t32 = ref["clip"].encode_images(imgs), ref["clip"].encode_texts(prompts)
    ci32, ct32 = clip_i_scores(g32[1:], g32[:-1]), clip_t_scores(g32, t32)
    for dt in low:
        s = image_scorers(args.device, dt, "float32", 8)["clip"]
        s.resolve_weights()
        s.load(args.device)
        g, t = s.encode_images(imgs), s.encode_texts(prompts)
        res[f"clip_{dt}"] = {"max_abs_diff_clip_i": float(np.abs(clip_i_scores(g[1:], g[:-1]) - ci32).max()),
                             "max_abs_diff_clip_t": float(np.abs(clip_t_scores(g, t) - ct32).max()),
                             "clip_i_range_fp32": [float(ci32.min()), float(ci32.max())],
                             "clip_t_range_fp32": [float(ct32.min()), float(ct32.max())]}
        print(f"CLIP {dt:>8} vs fp32: max |dCLIP-I| {res[f'clip_{dt}']['max_abs_diff_clip_i']:.2e}, "
              f"max |dCLIP-T| {res[f'clip_{dt}']['max_abs_diff_clip_t']:.2e}  (fp32 CLIP-I in "
              f"[{ci32.min():.3f}, {ci32.max():.3f}], CLIP-T in [{ct32.min():.3f}, {ct32.max():.3f}])")
        sys.stdout.flush()
    if not args.skip_aesthetic:
        a32 = ref["aesthetic"]
        a32.resolve_weights()
        a32.load(args.device)
        s32 = a32.score_images(imgs)
        for dt in low:
            torch.manual_seed(0)
            a = image_scorers(args.device, "float32", dt, 8)["aesthetic"]
            a.resolve_weights()
            a.load(args.device)
            got = a.score_images(imgs)
            res[f"aesthetic_{dt}"] = {"max_abs_diff": float(np.abs(got - s32).max()),
                                      "fp32_range": [float(s32.min()), float(s32.max())]}
            print(f"aesthetic {dt:>8} vs fp32: max |d score| {res[f'aesthetic_{dt}']['max_abs_diff']:.2e} "
                  f"(fp32 scores in [{s32.min():.3f}, {s32.max():.3f}])")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
