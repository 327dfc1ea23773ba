"""UniPortrait (junjiehe96/UniPortrait): SD1.5 + ID router; one identity entry per reference.

Runs in its own environment through ``workers/uniportrait_worker.py``, which mirrors the demo: an
``StableDiffusionControlNetPipeline`` (Realistic Vision 5.1, sd-vae-ft-mse, OpenPose ControlNet, DDIM)
wrapped by ``UniPortraitPipeline``; per reference an insightface detection and a 224 ``norm_crop`` (retried
on 1.25x grey padding as the demo does); the global ``attn_args`` set per call (``lora_scale`` 1 for one
identity, ``multi_id_lora_scale`` 1 for several, ``faceid_scale`` 0.7, ``num_faceids``); then
``generate(prompt, negative_prompt="nsfw", cond_faceids, face_structure_scale, seed, guidance_scale=7.5,
num_inference_steps=25, image=[control], controlnet_conditioning_scale=[c])``.

Layout: by default (``pose="none"``) the control image is all zeros with scale 0, as the demo; no GT input.
``pose="gt"`` sends the GT image (resized to the output) for an OpenPose map at scale 1.0, which hands the
method the GT pose: the record then lists ``pose`` and ``gt_image`` as GT-derived.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from multiid_bench.adapters._common import load_gt, load_refs
from multiid_bench.adapters._worker import WORKER_DEFAULTS, WorkerAdapter
from multiid_bench.adapters.base import Capabilities, presets_from
from multiid_bench.adapters.pipeline import Request
from multiid_bench.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case

__all__ = ["UniPortraitAdapter"]


class UniPortraitAdapter(WorkerAdapter):
    """UniPortrait: up to 4 identities, no layout by default."""

    name = "uniportrait"
    version = "1.0"
    worker_script = "uniportrait_worker.py"
    capabilities = Capabilities(
        max_ids=4,
        face_references_only=True,  # conditions on face crops / ID embeddings only
        native_res=(512, 512),
        licence="Apache-2.0 / Apache-2.0 (+ CreativeML OpenRAIL-M for SD1.5; insightface models non-commercial)",
        support_status="best-effort",
        integration="worker",
        prompt_template="{prompt}",
        upstream_repo="junjiehe96/UniPortrait",
        upstream_revision="65079d3",
        weight_ids=("Junjie96/UniPortrait", "SG161222/Realistic_Vision_V5.1_noVAE", "stabilityai/sd-vae-ft-mse",
                    "lllyasviel/control_v11p_sd15_openpose", "h94/IP-Adapter", "insightface buffalo_l"),
        defaults={
            **WORKER_DEFAULTS,
            "width": 512,
            "height": 512,
            "num_inference_steps": 25,
            "guidance_scale": 7.5,
            "faceid_scale": 0.7,
            "face_structure_scale": None,  # None = 0.1 for one identity, 0.3 for several (demo values)
            "negative_prompt": "nsfw",
            "pose": "none",  # none (zeros, scale 0; the demo) | gt (OpenPose of the GT, scale 1.0)
        },
        description="UniPortrait (SD1.5 + ID router), up to 4 identities; worker environment.",
        presets=presets_from(paper={}, upstream={
            "num_inference_steps": (25, "gradio_app.py default (65079d3)"),
            "guidance_scale": (7.5, "gradio_app.py default"), "faceid_scale": (0.7, "gradio_app.py default"),
            "face_structure_scale": (None, "gradio_app.py: 0.1 for one identity, 0.3 for several"),
            "negative_prompt": ("nsfw", "gradio_app.py default"),
            "pose": ("none", "gradio_app.py: zero control image at scale 0"),
        }),
    )

    def build_request(self, case: "Case", seed: int) -> Request:
        width, height = self.output_size()
        pose = self.settings["pose"]
        if pose not in ("none", "gt"):
            raise ConfigError(f"uniportrait: pose must be 'none' or 'gt', got {pose!r}")
        order = tuple(range(len(case.refs)))
        refs = tuple(load_refs(case, order))
        n = len(refs)
        structure = self.settings["face_structure_scale"]
        kwargs = {
            "prompt": case.prompt, "negative_prompt": str(self.settings["negative_prompt"]),
            "ref_images": list(refs), "width": width, "height": height,
            "num_inference_steps": int(self.settings["num_inference_steps"]),
            "guidance_scale": float(self.settings["guidance_scale"]),
            "faceid_scale": float(self.settings["faceid_scale"]),
            "face_structure_scale": float(structure if structure is not None else (0.1 if n == 1 else 0.3)),
            "lora_scale": 1.0 if n == 1 else 0.0, "multi_id_lora_scale": 1.0 if n > 1 else 0.0,
            "pose_image": None, "controlnet_conditioning_scale": 0.0,
        }
        gt_inputs: tuple[str, ...] = ()
        if pose == "gt":
            kwargs["pose_image"] = load_gt(case).resize((width, height))
            kwargs["controlnet_conditioning_scale"] = 1.0
            gt_inputs = ("pose", "gt_image")
        return Request(prompt=case.prompt, size=(width, height), images=refs, reference_order=order,
                       gt_derived_inputs=gt_inputs, call_kwargs=kwargs)

    def not_applicable_reason(self, case: "Case") -> str | None:
        if self.settings["pose"] == "gt" and case.gt is None:
            return f"uniportrait with pose='gt' needs the GT image; case {case.id!r} has none"
        return super().not_applicable_reason(case)
