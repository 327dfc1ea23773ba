"""Seconds per case (PF + SC prompts) and peak GPU memory of the local Qwen2.5-VL judge.

Usage (on a GPU machine):
  python benchmarks/bench_judge.py --weights qwen2.5-vl-7b-instruct --cases 16 --batch-size 4
  python benchmarks/bench_judge.py --model-dir /path/to/Qwen2.5-VL-7B-Instruct --inputs 2

Cases are synthetic: ``--inputs`` 1024x1024 input images plus a 1024x1024 output (OmniContext's output size),
random noise so that no JPEG shortcut makes them cheap. Prints one JSON line: judge id, device, dtype,
batch size, seconds per case (two prompts each, first batch excluded as warm-up), tokens generated per
answer, peak memory. The answers of a real judge on noise are meaningless; only the cost is measured.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="qwen2.5-vl-7b-instruct", help="manifest id of the judge")
    ap.add_argument("--model-dir", default=None, help="a local save_pretrained folder instead of the store")
    ap.add_argument("--cases", type=int, default=16)
    ap.add_argument("--inputs", type=int, default=1, help="input images per case (1 = single_character)")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=1024)
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()

    import numpy as np
    import torch
    from PIL import Image

    from multiid_bench.judge.scorer import JudgeItem, VlmJudge
    from multiid_bench.judge.backends import QwenVLJudgeBackend

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        items = []
        for i in range(args.cases):
            paths = []
            for k in range(args.inputs + 1):
                p = Path(tmp) / f"{i}_{k}.png"
                Image.fromarray(rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8)).save(p)
                paths.append(p)
            items.append(JudgeItem(f"case{i}", "single_character", "The person from image 1 reads in a cafe.",
                                   tuple(paths[:-1]), paths[-1]))
        backend = QwenVLJudgeBackend(args.weights, model_dir=args.model_dir, batch_size=args.batch_size,
                                     max_new_tokens=args.max_new_tokens)
        judge = VlmJudge(backend, cache_root=None)
        judge.load(args.device)
        warm = items[: args.batch_size]
        judge.judge(warm)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        results = judge.judge(items)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        lengths = [len(a.get("raw") or "") for r in results for a in r.answers.values()]
        print(json.dumps({
            "judge": judge.card["judge"], "device": args.device, "dtype": backend.dtype_name,
            "batch_size": args.batch_size, "inputs_per_case": args.inputs, "cases": len(items),
            "seconds_per_case": round(wall / len(items), 3), "mean_answer_chars": round(sum(lengths) / len(lengths), 1),
            "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        }))


if __name__ == "__main__":
    main()
