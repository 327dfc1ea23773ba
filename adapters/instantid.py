"""InstantID (instantX-research/InstantID): SDXL + IdentityNet (ControlNet on face keypoints) + IP-Adapter.

Single-identity method: 2-4 person cases are "not applicable". The worker (``workers/instantid_worker.py``)
imports ``StableDiffusionXLInstantIDPipeline`` and ``draw_kps`` from the repository's
``pipeline_stable_diffusion_xl_instantid.py`` (the same file as diffusers' community pipeline), loads
``ControlNetModel`` from ``<checkpoints>/ControlNetModel``, the SDXL base and ``ip-adapter.bin``, embeds the
largest face of the reference with insightface ``antelopev2`` and calls ``pipe(prompt, negative_prompt,
image_embeds, image=<kps image>, controlnet_conditioning_scale=0.8, ip_adapter_scale=0.8,
num_inference_steps=30, guidance_scale=5, generator)``.

Keypoints: by default (``kps_source="reference"``) from the reference face, drawn on the reference resized
to the output size, as the demo does without a pose image; no GT input. ``kps_source="gt"`` takes them from
the GT image's largest face (the demo's "reference pose" option): the record then lists ``keypoints`` and
``gt_image``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from multiid_bench.adapters._common import load_gt, load_refs
from multiid_bench.adapters._worker import WORKER_DEFAULTS, WorkerAdapter
from multiid_bench.adapters.base import Capabilities
from multiid_bench.adapters.pipeline import Request
from multiid_bench.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case

__all__ = ["InstantIDAdapter"]

# The Gradio demo's default negative prompt (gradio_demo/app.py).
NEGATIVE = ("(lowres, low quality, worst quality:1.2), (text:1.2), watermark, (frame:1.2), deformed, ugly, "
            "deformed eyes, blur, out of focus, blurry, deformed cat, deformed, photo, anthropomorphic cat, "
            "monochrome, pet collar, gun, weapon, blue, 3d, drones, drone, buildings in background, green")


class InstantIDAdapter(WorkerAdapter):
    """InstantID with the demo's defaults (30 steps, CFG 5, IdentityNet 0.8, adapter 0.8)."""

    name = "instantid"
    version = "1.0"
    worker_script = "instantid_worker.py"
    capabilities = Capabilities(
        max_ids=1,
        native_res=(1024, 1024),
        licence="Apache-2.0 / checkpoints research-only; insightface antelopev2 non-commercial",
        support_status="best-effort",
        integration="worker",
        uses_face_kps=True,
        prompt_template="{prompt}",
        upstream_repo="instantX-research/InstantID",
        upstream_revision="2145b67",
        weight_ids=("InstantX/InstantID:ControlNetModel", "InstantX/InstantID:ip-adapter.bin",
                    "stabilityai/stable-diffusion-xl-base-1.0", "insightface antelopev2"),
        defaults={
            **WORKER_DEFAULTS,
            "base_model": "stabilityai/stable-diffusion-xl-base-1.0",  # README uses wangqixun/YamerMIX_v8
            "checkpoints": "checkpoints",  # folder with ControlNetModel/ and ip-adapter.bin
            "antelopev2_root": "./",  # insightface root holding models/antelopev2
            "width": 1024,
            "height": 1024,
            "num_inference_steps": 30,
            "guidance_scale": 5.0,
            "controlnet_conditioning_scale": 0.8,
            "ip_adapter_scale": 0.8,
            "negative_prompt": NEGATIVE,
            "kps_source": "reference",  # reference | gt
        },
        description="InstantID (SDXL), single identity, keypoints from the reference; worker environment.",
    )

    def build_request(self, case: "Case", seed: int) -> Request:
        width, height = self.output_size()
        source = self.settings["kps_source"]
        if source not in ("reference", "gt"):
            raise ConfigError(f"instantid: kps_source must be 'reference' or 'gt', got {source!r}")
        refs = tuple(load_refs(case, (0,)))
        s = self.settings
        kwargs: dict[str, Any] = {
            "prompt": case.prompt, "negative_prompt": str(s["negative_prompt"]), "face_image": refs[0],
            "pose_image": None, "width": width, "height": height,
            "num_inference_steps": int(s["num_inference_steps"]), "guidance_scale": float(s["guidance_scale"]),
            "controlnet_conditioning_scale": float(s["controlnet_conditioning_scale"]),
            "ip_adapter_scale": float(s["ip_adapter_scale"]),
        }
        gt_inputs: tuple[str, ...] = ()
        if source == "gt":
            if case.gt is None:
                raise ConfigError(f"instantid kps_source='gt' needs a GT image; case {case.id!r} has none")
            kwargs["pose_image"] = load_gt(case).resize((width, height))
            gt_inputs = ("keypoints", "gt_image")
        return Request(prompt=case.prompt, size=(width, height), images=refs, reference_order=(0,),
                       gt_derived_inputs=gt_inputs, call_kwargs=kwargs)
