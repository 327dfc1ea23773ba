"""Worker for InfiniteYou (run from a checkout of bytedance/InfiniteYou at aaa6ea5, in its environment)."""
from __future__ import annotations

from _serve import MissingWeights, serve


def load(settings: dict, device: str):
    import os

    from pipelines.pipeline_infu_flux import InfUFluxPipeline

    root = settings["model_dir"]
    if not os.path.isdir(root):
        try:
            from huggingface_hub import snapshot_download

            version = settings["model_version"]
            root = snapshot_download(root, allow_patterns=[f"infu_flux_v1.0/{version}/*", "supports/insightface/*"])
        except Exception as e:
            raise MissingWeights(f"InfiniteYou weights {settings['model_dir']!r} unavailable ({e}); run: "
                                 f"huggingface-cli download ByteDance/InfiniteYou --include "
                                 f"'infu_flux_v1.0/{settings['model_version']}/*' 'supports/insightface/*'") from e
    return InfUFluxPipeline(
        base_model_path=settings["base_model_path"],
        infu_model_path=os.path.join(root, "infu_flux_v1.0", settings["model_version"]),
        insightface_root_path=os.path.join(root, "supports", "insightface"),
        model_version=settings["model_version"])


def generate(pipe, request: dict, seed: int):
    return pipe(id_image=request["id_image"], prompt=request["prompt"], control_image=request.get("control_image"),
                width=int(request["width"]), height=int(request["height"]), seed=seed,
                guidance_scale=float(request["guidance_scale"]), num_steps=int(request["num_steps"]),
                infusenet_conditioning_scale=float(request["infusenet_conditioning_scale"]),
                infusenet_guidance_start=float(request["infusenet_guidance_start"]),
                infusenet_guidance_end=float(request["infusenet_guidance_end"]))


if __name__ == "__main__":
    serve(load, generate)
