"""Worker for ID-Patch (run from a checkout of bytedance/ID-Patch at 099ad14, in its own environment).

Mirrors ``demo.py``: MTCNN (TensorFlow on CPU) 5 points -> 112 ``norm_crop`` -> facexlib ArcFace per
reference; rtmlib ``Body(mode="balanced")`` on the pose image -> OpenPose map; the nose of the person inside
each GT face box (left-to-right order, as the adapter sends the references) gives the face locations.
"""
from __future__ import annotations

from _serve import MissingWeights, serve


def load(settings: dict, device: str):
    import os

    import facexlib.recognition
    import tensorflow as tf
    from modules.inferencer import IDPatchInferencer
    from mtcnn import MTCNN
    from rtmlib import Body

    if not os.path.isdir(settings["idp_model_path"]):
        raise MissingWeights(f"ID-Patch weights not found at {settings['idp_model_path']!r}; "
                             "run: huggingface-cli download ByteDance/ID-Patch --local-dir models/ID-Patch")
    tf.config.set_visible_devices([], "GPU")
    torch_device = "cuda:0" if device.startswith("cuda") else device
    return {
        "mtcnn": MTCNN(),
        "arcface": facexlib.recognition.init_recognition_model("arcface", device=torch_device),
        "body": Body(to_openpose=False, mode="balanced", backend="onnxruntime", device="cpu"),
        "inferencer": IDPatchInferencer(base_model_path=settings["base_model_path"],
                                        idp_model_path=settings["idp_model_path"], torch_device=torch_device),
        "device": torch_device,
    }


def _embed(state: dict, pil_image):
    import numpy as np
    import torch
    from insightface.utils import face_align

    rgb = np.array(pil_image.convert("RGB"))
    found = state["mtcnn"].detect_faces(rgb)
    if not found:
        raise ValueError("MTCNN found no face in a reference image")
    k = found[0]["keypoints"]
    kps = np.array([k["left_eye"], k["right_eye"], k["nose"], k["mouth_left"], k["mouth_right"]])
    crop = face_align.norm_crop(rgb[:, :, ::-1], landmark=kps, image_size=112)  # BGR crop, as the demo
    x = torch.from_numpy(crop.copy()).unsqueeze(0).permute(0, 3, 1, 2) / 255.0
    return state["arcface"]((2 * x - 1).to(state["device"]).contiguous())[0]


def generate(state: dict, request: dict, seed: int):
    import numpy as np
    import torch
    from PIL import Image
    from utils.draw_condition import draw_openpose_from_mmpose

    embeds = torch.stack([_embed(state, im) for im in request["ref_images"]])
    pose_bgr = np.array(request["pose_image"].convert("RGB"))[:, :, ::-1].copy()
    keypoints, scores = state["body"](pose_bgr)
    noses = keypoints[:, 0]
    locations = []
    for x1, y1, x2, y2 in request["face_boxes"]:
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        locations.append(min(noses, key=lambda p: (p[0] - cx) ** 2 + (p[1] - cy) ** 2))
    control = Image.fromarray(draw_openpose_from_mmpose(pose_bgr * 0, keypoints, scores))
    return state["inferencer"].generate(
        embeds, torch.from_numpy(np.array(locations)), control, prompt=request["prompt"],
        negative_prompt=request["negative_prompt"], guidance_scale=float(request["guidance_scale"]),
        num_inference_steps=int(request["num_inference_steps"]),
        controlnet_conditioning_scale=float(request["controlnet_conditioning_scale"]),
        id_injection_ratio=float(request["id_injection_ratio"]), seed=seed)


if __name__ == "__main__":
    serve(load, generate)
