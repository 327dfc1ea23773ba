"""Worker for OmniGen2 and UMO-OmniGen2 (run in the OmniGen2 environment: torch 2.6, transformers 4.51.3).

Mirrors VectorSpaceLab/OmniGen2 ``inference.py`` (0f72fa9); UMO's LoRA (r=512 on to_q/to_k/to_v/to_out.0)
is added, loaded, fused and unloaded as bytedance/UMO does.
"""
from __future__ import annotations

from _serve import MissingWeights, serve


def load(settings: dict, device: str):
    import torch
    from omnigen2.models.transformers.transformer_omnigen2 import OmniGen2Transformer2DModel
    from omnigen2.pipelines.omnigen2.pipeline_omnigen2 import OmniGen2Pipeline

    dtype = getattr(torch, settings.get("dtype", "bfloat16"))
    path = settings["model_path"]
    try:
        pipe = OmniGen2Pipeline.from_pretrained(path, torch_dtype=dtype, trust_remote_code=True)
        pipe.transformer = OmniGen2Transformer2DModel.from_pretrained(path, subfolder="transformer", torch_dtype=dtype)
    except OSError as e:
        raise MissingWeights(f"OmniGen2 weights {path!r} not available: {e}; run: huggingface-cli download {path}") from e
    if settings.get("umo_lora"):
        from peft import LoraConfig
        from safetensors.torch import load_file

        from uno_worker import _hub_file

        pipe.transformer.add_adapter(LoraConfig(r=512, lora_alpha=512, init_lora_weights="gaussian",
                                                target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
        missing = pipe.transformer.load_state_dict(load_file(_hub_file(settings["umo_lora"])), strict=False)
        if missing.unexpected_keys:
            raise MissingWeights(f"UMO LoRA keys do not match the transformer: {missing.unexpected_keys[:5]}")
        pipe.transformer.fuse_lora()
        pipe.transformer.unload_lora()
    return pipe.to(device)


def generate(pipe, request: dict, seed: int):
    import torch

    generator = torch.Generator(device=pipe.device).manual_seed(seed)
    out = pipe(prompt=request["prompt"], input_images=request["input_images"], width=int(request["width"]),
               height=int(request["height"]), num_inference_steps=int(request["num_inference_steps"]),
               max_sequence_length=int(request["max_sequence_length"]),
               text_guidance_scale=float(request["text_guidance_scale"]),
               image_guidance_scale=float(request["image_guidance_scale"]), cfg_range=tuple(request["cfg_range"]),
               negative_prompt=request["negative_prompt"], num_images_per_prompt=1, generator=generator,
               output_type="pil", align_res=bool(request["align_res"]))
    return out.images[0]


if __name__ == "__main__":
    serve(load, generate)
