"""Worker for DreamO (run from a checkout of bytedance/DreamO at 461e35b, in its environment).

Mirrors the demo: ``Generator(...)``, ``pre_condition`` with task ``"id"`` per reference, then the pipeline
call with a CPU generator.
"""
from __future__ import annotations

from _serve import serve


def load(settings: dict, device: str):
    from dreamo_generator import Generator

    return Generator(version=settings["dreamo_version"], offload=bool(settings["offload"]),
                     no_turbo=bool(settings["no_turbo"]), quant=settings["quant"], device=device)


def generate(gen, request: dict, seed: int):
    import numpy as np
    import torch

    ref_conds, _debug, seed = gen.pre_condition(
        ref_images=[np.array(im) for im in request["ref_images"]], ref_tasks=request["ref_tasks"],
        ref_res=int(request["ref_res"]), seed=seed)
    out = gen.dreamo_pipeline(
        prompt=request["prompt"], width=int(request["width"]), height=int(request["height"]),
        num_inference_steps=int(request["num_inference_steps"]), guidance_scale=float(request["guidance_scale"]),
        ref_conds=ref_conds, generator=torch.Generator(device="cpu").manual_seed(seed),
        true_cfg_scale=float(request["true_cfg_scale"]), true_cfg_start_step=int(request["true_cfg_start_step"]),
        true_cfg_end_step=int(request["true_cfg_end_step"]), negative_prompt=request["negative_prompt"],
        neg_guidance_scale=float(request["neg_guidance_scale"]),
        first_step_guidance_scale=float(request["first_step_guidance_scale"]))
    return out.images[0]


if __name__ == "__main__":
    serve(load, generate)
