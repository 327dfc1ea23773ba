"""ID-Patch (bytedance/ID-Patch): SDXL + ControlNet (OpenPose) + identity patches at face positions.

ID-Patch needs a pose image and the face (nose) positions; in this benchmark both come from the **GT**
image, resized to the output size, so the record lists ``pose`` and ``gt_image`` as GT-derived. The worker
(``workers/idpatch_worker.py``; Python 3.9, torch 2.1.2, diffusers 0.30.3, TensorFlow for MTCNN, rtmlib)
mirrors the demo: rtmlib ``Body(mode="balanced")`` keypoints on the pose image -> OpenPose map, nose points
sorted left to right (here: the detected person whose nose lies in each GT face box, so extra people in
the GT do not shift the assignment); MTCNN + 112 ``norm_crop`` + facexlib ArcFace on each reference; then
``IDPatchInferencer(base_model_path, idp_model_path).generate(face_embeds, face_locations, control_image,
prompt, negative_prompt, guidance_scale=5.5, num_inference_steps=50, controlnet_conditioning_scale=0.8,
id_injection_ratio=0.8, seed)``. Since ID-Patch assigns identities to faces left to right, the references
are sent **ordered by the x-centre of their GT boxes** (``reference_order`` records it). Faces whose
64-px patch falls outside the canvas are dropped by upstream without notice.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from multiid_bench.adapters._common import fit_size, gt_size, load_gt, load_refs, order_left_to_right
from multiid_bench.adapters._worker import WORKER_DEFAULTS, WorkerAdapter
from multiid_bench.adapters.base import Capabilities, presets_from, scale_boxes
from multiid_bench.adapters.pipeline import Request

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case

__all__ = ["IDPatchAdapter"]

NEGATIVE = ("nude, worst quality, low quality, normal quality, nsfw, abstract, glitch, deformed, mutated, ugly, "
            "disfigured, text, watermark, bad hands, error, jpeg artifacts, blurry, missing fingers")


class IDPatchAdapter(WorkerAdapter):
    """ID-Patch: GT pose map + left-to-right references; output size = the resized GT."""

    name = "id-patch"
    version = "1.0"
    worker_script = "idpatch_worker.py"
    capabilities = Capabilities(
        max_ids=4,
        face_references_only=True,  # conditions on face crops / ID embeddings only
        native_res=(1024, 1024),
        licence="Apache-2.0 / openrail++",
        support_status="best-effort",
        integration="worker",
        needs_boxes=True,
        needs_pose_image=True,
        prompt_template="{prompt}",
        upstream_repo="bytedance/ID-Patch",
        upstream_revision="099ad14",
        weight_ids=("ByteDance/ID-Patch", "RunDiffusion/Juggernaut-X-v10", "rtmlib body (balanced)",
                    "MTCNN (mtcnn package)", "facexlib arcface"),
        gt_derived_inputs=("boxes", "pose", "gt_image"),
        defaults={
            **WORKER_DEFAULTS,
            "base_model_path": "RunDiffusion/Juggernaut-X-v10",
            "idp_model_path": "models/ID-Patch",
            "long_side": 1024,  # the GT is resized to this long side (multiple of 8) and used as pose image
            "num_inference_steps": 50,
            "guidance_scale": 5.5,
            "controlnet_conditioning_scale": 0.8,
            "id_injection_ratio": 0.8,
            "negative_prompt": NEGATIVE,  # demo.py's default
        },
        description="ID-Patch (SDXL); pose and face positions from the GT; worker environment (own venv).",
        presets=presets_from(paper={"long_side": (1024, "paper App. F.1: 'ID-Patch requires pose condition, and we use the "
                                                 "ground-truth pose for it' (GT resized to long side 1024)")},
                             upstream={
            "num_inference_steps": (50, "demo.py --num_inference_steps default (099ad14)"),
            "guidance_scale": (5.5, "demo.py --guidance_scale default (IDPatchInferencer.generate's own is 5.0)"),
            "controlnet_conditioning_scale": (0.8, "IDPatchInferencer.generate default"),
            "id_injection_ratio": (0.8, "IDPatchInferencer.generate default"),
            "negative_prompt": (NEGATIVE, "demo.py default"),
            "long_side": (1024, "pose image size: ours (upstream takes the pose image's own size)"),
        }),
    )

    def _pose_size(self, case: "Case") -> tuple[int, int]:
        w, h = gt_size(case)
        s = int(self.settings["long_side"]) / max(w, h)
        return fit_size(round(w * s), round(h * s), 8)

    def build_request(self, case: "Case", seed: int) -> Request:
        width, height = self._pose_size(case)
        order = order_left_to_right(case)
        refs = tuple(load_refs(case, order))
        gt = load_gt(case)
        pose_image = gt.resize((width, height))
        boxes = scale_boxes([case.boxes[i] for i in order], gt.size, (width, height))
        kwargs = {
            "prompt": case.prompt, "negative_prompt": str(self.settings["negative_prompt"]),
            "ref_images": list(refs), "pose_image": pose_image, "face_boxes": [list(b) for b in boxes],
            "num_inference_steps": int(self.settings["num_inference_steps"]),
            "guidance_scale": float(self.settings["guidance_scale"]),
            "controlnet_conditioning_scale": float(self.settings["controlnet_conditioning_scale"]),
            "id_injection_ratio": float(self.settings["id_injection_ratio"]),
        }
        return Request(prompt=case.prompt, size=(width, height), images=refs, reference_order=order, boxes=boxes,
                       gt_derived_inputs=("boxes", "pose", "gt_image"), call_kwargs=kwargs,
                       extra={"reference_order_rule": "left-to-right by GT box x-centre"})
