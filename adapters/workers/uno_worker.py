"""Worker for UNO, UMO-UNO and USO (run in the UNO/USO environment; see docs/adapters.md).

Mirrors ``inference.py`` of bytedance/UNO (d305981) and bytedance/USO (b6784d7). Weight locations follow the
upstream environment variables (FLUX_DEV, AE, T5, CLIP, LORA, PROJECTION_MODEL, SIGLIP_PATH) or download.

* UMO-UNO: UNO's ``load_ckpt`` loads the UMO state dict on the CPU; UMO's own scripts (``demo/UNO/app.py``,
  ``eval/UNO/inference_*.py`` at aada3dc) then call ``pipeline.model.to(device)``, and so do we.
* USO: ``inference.py`` calls ``load_dotenv()`` before importing ``uso``, whose ``flux/util.py`` reads the
  weight paths from the environment at import time, and with ``hf_download=False`` the LoRA and projector
  come only from ``LORA`` / ``PROJECTION_MODEL``. We load the repository's ``.env`` (``env_file`` setting,
  relative to the checkout) before the import and fail with the fix when either path is missing.
"""
from __future__ import annotations

from _serve import MissingWeights, load_env_file, serve

USO_ENV_KEYS = ("LORA", "PROJECTION_MODEL")


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

        try:
            pipe = UNOPipeline(settings["model_type"], dev, bool(settings["offload"]), only_lora=True,
                               lora_rank=int(settings["lora_rank"]))
        except OSError as e:  # hf_hub_download / from_pretrained: not cached and not downloadable (offline, gated)
            raise MissingWeights(
                f"UNO weights not available: {e}. Set FLUX_DEV, AE, T5, CLIP and LORA to local files, or allow "
                "downloads (FLUX.1-dev is gated: huggingface-cli login and accept its licence)") from e
        if settings.get("umo_ckpt"):
            pipe.load_ckpt(_hub_file(settings["umo_ckpt"]))
            pipe.model.to(dev)  # load_ckpt leaves the weights on the CPU (UMO's scripts move them back)
        return {"family": family, "pipe": pipe, "preprocess_ref": preprocess_ref}
    if family == "uso":
        import os

        env_file = settings.get("env_file") or ".env"
        load_env_file(env_file)  # before importing uso: its flux/util.py reads the paths at import time
        missing = [k for k in USO_ENV_KEYS if not os.environ.get(k) or not os.path.exists(os.environ[k])]
        if missing:
            raise MissingWeights(
                f"USO needs {' and '.join(missing)} (set in {os.path.abspath(env_file)} or the environment) "
                f"pointing at existing files; got {[os.environ.get(k) for k in missing]}. In the USO checkout: "
                f"cp example.env .env && python weights/downloader.py (or huggingface-cli download "
                f"bytedance-research/USO --local-dir weights/USO)")
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
