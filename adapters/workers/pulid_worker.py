"""Worker for PuLID-FLUX (run from a checkout of ToTheBeginning/PuLID at 1aa2fc7, in its environment)."""
from __future__ import annotations

from types import SimpleNamespace

from _serve import serve


def load(settings: dict, device: str):
    from app_flux import FluxGenerator

    args = SimpleNamespace(fp8=bool(settings["fp8"]), onnx_provider=settings["onnx_provider"],
                           pretrained_model=settings["pretrained_model"], version=settings["pulid_version"])
    return FluxGenerator(settings["model_name"], device, bool(settings["offload"]),
                         bool(settings["aggressive_offload"]), args)


def generate(gen, request: dict, seed: int):
    import numpy as np

    out = gen.generate_image(
        width=int(request["width"]), height=int(request["height"]), num_steps=int(request["num_steps"]),
        start_step=int(request["start_step"]), guidance=float(request["guidance"]), seed=seed,
        prompt=request["prompt"], id_image=np.array(request["id_image"]), id_weight=float(request["id_weight"]),
        neg_prompt=request["neg_prompt"], true_cfg=float(request["true_cfg"]),
        timestep_to_start_cfg=int(request["timestep_to_start_cfg"]),
        max_sequence_length=int(request["max_sequence_length"]))
    return out[0] if isinstance(out, tuple) else out


if __name__ == "__main__":
    serve(load, generate)
