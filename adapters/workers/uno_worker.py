"""Worker for UNO, UMO-UNO and USO (run in the UNO/USO environment; see docs/adapters.md).

Mirrors ``inference.py`` of bytedance/UNO (d305981) and bytedance/USO (b6784d7). Weight locations follow the
upstream environment variables (FLUX_DEV, AE, T5, CLIP, LORA, PROJECTION_MODEL, SIGLIP_PATH) or download.
"""
from __future__ import annotations

from _serve import MissingWeights, serve


def _hub_file(spec: str) -> str:
    """``"owner/repo/file"`` on the hub (downloaded/cached) or a local path."""
    import os

    if os.path.exists(spec):
        return spec
    from huggingface_hub import hf_hub_download

    owner, repo, filename = spec.split("/", 2)
    try:
        return hf_hub_download(f"{owner}/{repo}", filename)
    except Exception as e:  # offline, gated, missing
        raise MissingWeights(f"cannot get {spec}: {e}; run: huggingface-cli download {owner}/{repo} {filename}") from e


def load(settings: dict, device: str):
    import torch

    family = settings["family"]
    dev = torch.device(device)
    if family in ("uno", "umo"):
        from uno.flux.pipeline import UNOPipeline, preprocess_ref

        pipe = UNOPipeline(settings["model_type"], dev, bool(settings["offload"]), only_lora=True,
                           lora_rank=int(settings["lora_rank"]))
        if settings.get("umo_ckpt"):
            pipe.load_ckpt(_hub_file(settings["umo_ckpt"]))
        return {"family": family, "pipe": pipe, "preprocess_ref": preprocess_ref}
    if family == "uso":
        import os

        from transformers import SiglipImageProcessor, SiglipVisionModel
        from uso.flux.pipeline import USOPipeline, preprocess_ref

        siglip_path = os.getenv("SIGLIP_PATH", settings["siglip_path"])
        processor = SiglipImageProcessor.from_pretrained(siglip_path)
        siglip = SiglipVisionModel.from_pretrained(siglip_path).eval().to(dev)
        pipe = USOPipeline(settings["model_type"], dev, bool(settings["offload"]), only_lora=True,
                           lora_rank=int(settings["lora_rank"]), hf_download=False)
        pipe.model.vision_encoder = siglip
        return {"family": family, "pipe": pipe, "preprocess_ref": preprocess_ref, "siglip_processor": processor}
    raise ValueError(f"unknown family {family!r}")


def generate(state: dict, request: dict, seed: int):
    import torch

    refs = [state["preprocess_ref"](im, int(request["ref_size"])) for im in request["ref_imgs"]]
    kwargs = dict(prompt=request["prompt"], width=int(request["width"]), height=int(request["height"]),
                  guidance=float(request["guidance"]), num_steps=int(request["num_steps"]), seed=seed,
                  ref_imgs=refs, pe=request["pe"])
    if state["family"] == "uso":
        with torch.no_grad():
            kwargs["siglip_inputs"] = [state["siglip_processor"](im, return_tensors="pt").to(state["pipe"].device)
                                       for im in request.get("style_imgs") or []]
    return state["pipe"](**kwargs)


if __name__ == "__main__":
    serve(load, generate)
