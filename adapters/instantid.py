"""InstantID (instantX-research/InstantID): SDXL + IdentityNet (ControlNet on face keypoints) + IP-Adapter.

Single-identity method: 2-4 person cases are "not applicable". The worker (``workers/instantid_worker.py``)
imports ``StableDiffusionXLInstantIDPipeline`` and ``draw_kps`` from the repository's
``pipeline_stable_diffusion_xl_instantid.py`` (the same file as diffusers' community pipeline), loads
``ControlNetModel`` from ``<checkpoints>/ControlNetModel``, the SDXL base and ``ip-adapter.bin``, embeds the
largest face of the reference with insightface ``antelopev2`` and calls ``pipe(prompt, negative_prompt,
image_embeds, image=<kps image>, controlnet_conditioning_scale=0.8, ip_adapter_scale=0.8,
num_inference_steps=30, guidance_scale=5, generator)``.

Keypoints: by default (``kps_source="reference"``) from the reference face, drawn on the reference resized
as ``infer.py``'s ``resize_img`` does (short side to 1024, then long side to 1280, both floored to a
multiple of 64: the reference's aspect ratio is kept, and the output takes the keypoint image's size); no GT
input. ``kps_source="gt"`` takes them from the GT image's largest face (the demo's "reference pose" option),
the GT resized by the same rule: the record then lists ``keypoints`` and ``gt_image``. ``width``/``height``
force a size instead. The negative prompt is ``infer.py``'s (2145b67).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from multiid_bench.adapters._common import load_gt, load_refs
from multiid_bench.adapters._worker import WORKER_DEFAULTS, WorkerAdapter
from multiid_bench.adapters.base import Capabilities, presets_from
from multiid_bench.adapters.pipeline import Request
from multiid_bench.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case

__all__ = ["InstantIDAdapter"]

# ``n_prompt`` of infer.py at 2145b67, verbatim (it repeats itself upstream; kept as is).
NEGATIVE = ("(lowres, low quality, worst quality:1.2), (text:1.2), watermark, painting, drawing, illustration, "
            "glitch, deformed, mutated, cross-eyed, ugly, disfigured (lowres, low quality, worst quality:1.2), "
            "(text:1.2), watermark, painting, drawing, illustration, glitch,deformed, mutated, cross-eyed, ugly, "
            "disfigured")


def resize_img_size(size: tuple[int, int], max_side: int = 1280, min_side: int = 1024,
                    base: int = 64) -> tuple[int, int]:
    """The (W, H) ``resize_img`` of InstantID's ``infer.py`` gives an image of ``size`` (our reading of it).

    Scale so the short side is ``min_side`` (rounded), then so the long side is ``max_side``, and floor each
    side to a multiple of ``base``: the aspect ratio is kept up to the flooring.

    Example:
        >>> resize_img_size((512, 512)), resize_img_size((600, 800)), resize_img_size((100, 120))
        ((1280, 1280), (960, 1280), (1024, 1280))
    """
    w, h = size
    ratio = min_side / min(w, h)
    w, h = round(ratio * w), round(ratio * h)
    ratio = max_side / max(w, h)
    return (round(ratio * w) // base) * base, (round(ratio * h) // base) * base


class InstantIDAdapter(WorkerAdapter):
    """InstantID with ``infer.py``'s defaults (30 steps, CFG 5, IdentityNet 0.8, adapter 0.8, its negative)."""

    name = "instantid"
    version = "1.0"
    worker_script = "instantid_worker.py"
    capabilities = Capabilities(
        max_ids=1,
        face_references_only=True,  # conditions on face crops / ID embeddings only
        native_res=(1280, 1280),  # a square reference under resize_img; otherwise the reference's aspect
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
            "width": None,  # None: resize_img of the keypoint image (reference or GT), aspect kept
            "height": None,
            "max_side": 1280,
            "min_side": 1024,
            "num_inference_steps": 30,
            "guidance_scale": 5.0,
            "controlnet_conditioning_scale": 0.8,
            "ip_adapter_scale": 0.8,
            "negative_prompt": NEGATIVE,
            "kps_source": "reference",  # reference | gt
        },
        description="InstantID (SDXL), single identity, keypoints from the reference; worker environment.",
        presets=presets_from(paper={}, upstream={
            "negative_prompt": (NEGATIVE, "infer.py n_prompt (2145b67)"),
            "max_side": (1280, "infer.py resize_img(max_side=1280)"),
            "min_side": (1024, "infer.py resize_img(min_side=1024)"),
            "num_inference_steps": (30, "infer.py"), "guidance_scale": (5.0, "infer.py"),
            "controlnet_conditioning_scale": (0.8, "infer.py"), "ip_adapter_scale": (0.8, "infer.py"),
            "kps_source": ("reference", "infer.py: keypoints of the face image itself"),
        }),
    )

    def build_request(self, case: "Case", seed: int) -> Request:
        source = self.settings["kps_source"]
        if source not in ("reference", "gt"):
            raise ConfigError(f"instantid: kps_source must be 'reference' or 'gt', got {source!r}")
        refs = tuple(load_refs(case, (0,)))
        s = self.settings
        gt_image = None
        if source == "gt":
            if case.gt is None:
                raise ConfigError(f"instantid kps_source='gt' needs a GT image; case {case.id!r} has none")
            gt_image = load_gt(case)
        kps_image = gt_image if gt_image is not None else refs[0]
        width, height = resize_img_size(kps_image.size, int(s["max_side"]), int(s["min_side"]))
        if s["width"] or s["height"]:
            width, height = int(s["width"] or width), int(s["height"] or height)
        kwargs: dict[str, Any] = {
            "prompt": case.prompt, "negative_prompt": str(s["negative_prompt"]), "face_image": refs[0],
            "face_size": list(resize_img_size(refs[0].size, int(s["max_side"]), int(s["min_side"]))),
            "pose_image": None, "width": width, "height": height,
            "num_inference_steps": int(s["num_inference_steps"]), "guidance_scale": float(s["guidance_scale"]),
            "controlnet_conditioning_scale": float(s["controlnet_conditioning_scale"]),
            "ip_adapter_scale": float(s["ip_adapter_scale"]),
        }
        gt_inputs: tuple[str, ...] = ()
        if gt_image is not None:
            kwargs["pose_image"] = gt_image.resize((width, height))
            gt_inputs = ("keypoints", "gt_image")
        return Request(prompt=case.prompt, size=(width, height), images=refs, reference_order=(0,),
                       gt_derived_inputs=gt_inputs, call_kwargs=kwargs)
