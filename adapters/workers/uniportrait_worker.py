"""Worker for UniPortrait (run from a checkout of junjiehe96/UniPortrait at 65079d3, in its environment).

Mirrors ``gradio_app.py``: SD1.5 ControlNet pipeline + ``UniPortraitPipeline``; insightface detection with
the 1.25x grey-padding retry; 224 ``norm_crop`` per identity; global ``attn_args`` set per call.
Weight paths are the demo's (``models/...`` under the checkout) unless overridden in the environment.
"""
from __future__ import annotations

from _serve import MissingWeights, serve


def load(settings: dict, device: str):
    import os

    import torch
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, StableDiffusionControlNetPipeline
    from insightface.app import FaceAnalysis
    from uniportrait.uniportrait_pipeline import UniPortraitPipeline

    dtype = torch.float16
    files = {k: os.environ.get(f"UNIPORTRAIT_{k.upper()}", v) for k, v in {
        "image_encoder": "models/IP-Adapter/models/image_encoder",
        "ip_ckpt": "models/IP-Adapter/models/ip-adapter_sd15.bin",
        "face_backbone": "models/glint360k_curricular_face_r101_backbone.bin",
        "faceid": "models/uniportrait-faceid_sd15.bin",
        "router": "models/uniportrait-router_sd15.bin",
    }.items()}
    missing = [p for p in files.values() if not os.path.exists(p)]
    if missing:
        raise MissingWeights(f"UniPortrait files missing: {missing}; download Junjie96/UniPortrait and h94/IP-Adapter "
                             "into models/ as the UniPortrait README says")
    controlnet = ControlNetModel.from_pretrained("lllyasviel/control_v11p_sd15_openpose", torch_dtype=dtype)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    vae = AutoencoderKL.from_pretrained("stabilityai/sd-vae-ft-mse").to(dtype=dtype)
    pipe = StableDiffusionControlNetPipeline.from_pretrained(
        "SG161222/Realistic_Vision_V5.1_noVAE", controlnet=[controlnet], torch_dtype=dtype, scheduler=scheduler, vae=vae)
    uni = UniPortraitPipeline(pipe, files["image_encoder"], ip_ckpt=files["ip_ckpt"],
                              face_backbone_ckpt=files["face_backbone"], uniportrait_faceid_ckpt=files["faceid"],
                              uniportrait_router_ckpt=files["router"], device=device, torch_dtype=dtype)
    faces = FaceAnalysis(allowed_modules=["detection"])
    faces.prepare(ctx_id=0 if device.startswith("cuda") else -1, det_size=(640, 640))
    return {"uni": uni, "faces": faces, "openpose": None}


def _aligned_face(faces, pil_image):
    import cv2
    import numpy as np
    from insightface.utils import face_align
    from PIL import Image

    img = cv2.cvtColor(np.array(pil_image.convert("RGB")), cv2.COLOR_RGB2BGR)
    found = faces.get(img)
    if not found:  # the demo's retry: pad by 1.25x with grey and map the faces back
        h, w = img.shape[:2]
        top, left = int(h * 0.25), int(w * 0.25)
        padded = cv2.copyMakeBorder(img, top, top, left, left, cv2.BORDER_CONSTANT, value=(128, 128, 128))
        found = faces.get(padded)
        for f in found:
            f.kps = f.kps - np.array([left, top])
            f.bbox = np.minimum(np.maximum(f.bbox.reshape(-1, 2) - [left, top], [0, 0]), [w, h]).reshape(4)
    if not found:
        raise ValueError("no face detected in a reference image")
    face = max(found, key=lambda f: abs((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])))
    norm = face_align.norm_crop(img, landmark=face.kps, image_size=224)
    return Image.fromarray(cv2.cvtColor(norm, cv2.COLOR_BGR2RGB))


def generate(state: dict, request: dict, seed: int):
    import torch
    from uniportrait.uniportrait_attention_processor import attn_args

    cond = [{"refs": [_aligned_face(state["faces"], im)]} for im in request["ref_images"]]
    attn_args.reset()
    attn_args.lora_scale = float(request["lora_scale"])
    attn_args.multi_id_lora_scale = float(request["multi_id_lora_scale"])
    attn_args.faceid_scale = float(request["faceid_scale"])
    attn_args.num_faceids = len(cond)
    h, w = int(request["height"]), int(request["width"])
    if request.get("pose_image") is not None:
        if state["openpose"] is None:
            from controlnet_aux import OpenposeDetector

            state["openpose"] = OpenposeDetector.from_pretrained("lllyasviel/Annotators")
        control = state["openpose"](request["pose_image"]).resize((w, h))
    else:
        control = torch.zeros([1, 3, h, w])
    images = state["uni"].generate(
        prompt=[request["prompt"]], negative_prompt=[request["negative_prompt"]], cond_faceids=cond,
        face_structure_scale=float(request["face_structure_scale"]), seed=seed,
        guidance_scale=float(request["guidance_scale"]), num_inference_steps=int(request["num_inference_steps"]),
        image=[control], controlnet_conditioning_scale=[float(request["controlnet_conditioning_scale"])])
    return images[0]


if __name__ == "__main__":
    serve(load, generate)
