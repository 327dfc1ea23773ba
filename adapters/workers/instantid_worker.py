"""Worker for InstantID (run from a checkout of instantX-research/InstantID at 2145b67).

Mirrors ``infer.py`` / the Gradio demo: the face image is resized as ``resize_img`` does (the adapter sends
the size, ``face_size``, which keeps the reference's aspect ratio); antelopev2 embedding of its largest face;
keypoints drawn with ``draw_kps`` on the face image, or on the pose image (resized to the output size) when
one is sent. The output takes the keypoint image's size, as upstream (no width/height passed).
"""
from __future__ import annotations

from _serve import MissingWeights, serve


def load(settings: dict, device: str):
    import os

    import torch
    from diffusers.models import ControlNetModel
    from insightface.app import FaceAnalysis
    from pipeline_stable_diffusion_xl_instantid import StableDiffusionXLInstantIDPipeline, draw_kps

    ckpt = settings["checkpoints"]
    for need in ("ControlNetModel", "ip-adapter.bin"):
        if not os.path.exists(os.path.join(ckpt, need)):
            raise MissingWeights(f"InstantID file {os.path.join(ckpt, need)} missing; run: huggingface-cli download "
                                 f"InstantX/InstantID --local-dir {ckpt}")
    app = FaceAnalysis(name="antelopev2", root=settings["antelopev2_root"],
                       providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    app.prepare(ctx_id=0 if device.startswith("cuda") else -1, det_size=(640, 640))
    controlnet = ControlNetModel.from_pretrained(os.path.join(ckpt, "ControlNetModel"), torch_dtype=torch.float16)
    pipe = StableDiffusionXLInstantIDPipeline.from_pretrained(settings["base_model"], controlnet=controlnet,
                                                              torch_dtype=torch.float16).to(device)
    pipe.load_ip_adapter_instantid(os.path.join(ckpt, "ip-adapter.bin"))
    return {"pipe": pipe, "app": app, "draw_kps": draw_kps, "device": device}


def _largest_face(app, pil_image):
    import cv2
    import numpy as np

    faces = app.get(cv2.cvtColor(np.array(pil_image.convert("RGB")), cv2.COLOR_RGB2BGR))
    if not faces:
        raise ValueError("no face detected")
    return max(faces, key=lambda f: (f["bbox"][2] - f["bbox"][0]) * (f["bbox"][3] - f["bbox"][1]))


def generate(state: dict, request: dict, seed: int):
    import torch

    w, h = int(request["width"]), int(request["height"])
    face_image = request["face_image"].resize(tuple(int(v) for v in request.get("face_size") or (w, h)))
    face = _largest_face(state["app"], face_image)
    kps_source = request.get("pose_image").resize((w, h)) if request.get("pose_image") is not None else face_image
    kps = _largest_face(state["app"], kps_source)["kps"] if kps_source is not face_image else face["kps"]
    pipe = state["pipe"]
    pipe.set_ip_adapter_scale(float(request["ip_adapter_scale"]))
    generator = torch.Generator(device=state["device"]).manual_seed(seed)
    return pipe(prompt=request["prompt"], negative_prompt=request["negative_prompt"], image_embeds=face["embedding"],
                image=state["draw_kps"](kps_source, kps),
                controlnet_conditioning_scale=float(request["controlnet_conditioning_scale"]),
                ip_adapter_scale=float(request["ip_adapter_scale"]),
                num_inference_steps=int(request["num_inference_steps"]),
                guidance_scale=float(request["guidance_scale"]), generator=generator).images[0]


if __name__ == "__main__":
    serve(load, generate)
