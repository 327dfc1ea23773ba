"""Qwen-Image-Edit through diffusers: ``QwenImageEditPlusPipeline`` (2509 / 2511, several images) or
``QwenImageEditPipeline`` (the August 2025 "2508" model, one image).

Checkpoint by preset:

* ``--preset paper`` (default): ``Qwen/Qwen-Image-Edit`` (2508) on single-person cases only; 2-4 person
  cases are "not applicable". Why: the paper cites Qwen-Image-Edit as the Qwen-Image technical report
  (Wu et al. 2025a, arXiv 2508.02324, August 2025), lists it in Table 1 (single person) and leaves it out
  of Table 2, which holds "only those supporting multi-ID generation" (Sec. 6). The 2509/2511 checkpoints
  take several images, so a multi-image checkpoint would have been in Table 2; the single-image August
  model is the one consistent with the tables. (An inference: the paper does not name the checkpoint.)
* ``--preset upstream``: ``Qwen/Qwen-Image-Edit-2509`` (multi-image; the model card says 1-3 images work
  best, so 4-person cases run but are outside that range).

With 2508 and ``multi_id="stitch"`` several references are stitched left to right on one canvas, as for
Kontext. The Plus pipeline numbers the images itself ("Picture 1: ..."), so the prompt refers to
"Picture k". Prompts are never rewritten by an LLM.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from multiid_bench.adapters._common import one_input_image, people_prompt
from multiid_bench.adapters._diffusers import DIFFUSERS_DEFAULTS, DiffusersAdapter
from multiid_bench.adapters.base import Capabilities, presets_from
from multiid_bench.adapters.pipeline import Request
from multiid_bench.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case

__all__ = ["QwenImageEditAdapter"]

SINGLE = "The person is the person in Picture 1; keep their face and identity."
EACH = "Person {k} is the person in Picture {k}."
STITCHED = "The input image shows {n} people side by side, from left to right; keep the face and identity of each."
_PLUS_MARKERS = ("2509", "2511", "plus")


class QwenImageEditAdapter(DiffusersAdapter):
    """Qwen-Image-Edit 2509/2511 (image list, true CFG 4, 40 steps) or 2508 (one image, 50 steps)."""

    name = "qwen-image-edit"
    version = "1.0"
    pipeline_class = "QwenImageEditPlusPipeline"
    min_diffusers = "0.36.0"
    capabilities = Capabilities(
        max_ids=4,
        native_res=(1024, 1024),
        licence="Apache-2.0 / Apache-2.0",
        support_status="best-effort",
        integration="diffusers",
        pip_extra="qwen",
        prompt_template="{prompt} " + SINGLE + " | n>1: {prompt} " + EACH + " (k = 1..n)",
        upstream_repo="QwenLM/Qwen-Image",
        upstream_revision="6b5e1f5",
        weight_ids=("Qwen/Qwen-Image-Edit-2509",),
        defaults={
            **DIFFUSERS_DEFAULTS,
            "model_id": "Qwen/Qwen-Image-Edit-2509",
            "num_inference_steps": None,  # None = 40 for 2509/2511, 50 for 2508 (the model cards' values)
            "true_cfg_scale": 4.0,
            "guidance_scale": 1.0,  # 2509/2511 only
            "negative_prompt": " ",
            "width": 1024,
            "height": 1024,
            "stitch_height": 512,
            "multi_id": "auto",  # auto (image list on 2509/2511, stitch on 2508) | single-only
        },
        description="Qwen-Image-Edit; paper preset: 2508 on single-person cases; upstream: 2509 image list.",
        presets=presets_from(
            paper={"model_id": ("Qwen/Qwen-Image-Edit", "paper cites the Qwen-Image report (arXiv 2508.02324) and "
                                                        "omits Qwen-Image-Edit from the multi-ID Table 2 (Sec. 6): "
                                                        "the single-image August 2025 checkpoint"),
                   "multi_id": ("single-only", "paper Sec. 6 and Tables 1/2: single-person subset only")},
            upstream={"model_id": ("Qwen/Qwen-Image-Edit-2509", "Qwen-Image-Edit-2509 model card (multi-image)"),
                      "multi_id": ("auto", "2509 takes an image list (model card: 1-3 images best)"),
                      "num_inference_steps": (None, "model cards: 40 for 2509/2511, 50 for 2508"),
                      "true_cfg_scale": (4.0, "model cards"),
                      "negative_prompt": (" ", "model cards")},
        ),
    )

    def not_applicable_reason(self, case: "Case") -> str | None:
        mode = self.settings["multi_id"]
        if mode not in ("auto", "single-only"):
            raise ConfigError(f"qwen-image-edit: multi_id must be 'auto' or 'single-only', got {mode!r}")
        if mode == "single-only" and len(case.refs) > 1:
            return (f"qwen-image-edit runs single-identity cases only (multi_id='single-only', the paper preset); "
                    f"case {case.id!r} has {len(case.refs)}")
        return super().not_applicable_reason(case)

    @property
    def is_plus(self) -> bool:
        model = str(self.settings["model_id"]).lower()
        return any(m in model for m in _PLUS_MARKERS)

    def pipeline_class_name(self) -> str:
        return "QwenImageEditPlusPipeline" if self.is_plus else "QwenImageEditPipeline"

    def build_request(self, case: "Case", seed: int) -> Request:
        inp = self.case_inputs(case)
        refs = inp.refs
        steps = self.settings["num_inference_steps"] or (40 if self.is_plus else 50)
        kwargs = {
            "prompt": "",
            "negative_prompt": self.settings["negative_prompt"],
            "true_cfg_scale": float(self.settings["true_cfg_scale"]),
            "num_inference_steps": int(steps),
            "height": inp.height,
            "width": inp.width,
        }
        if self.is_plus:
            images = tuple(refs)
            prompt = people_prompt(case.prompt, len(refs), SINGLE, EACH)
            kwargs["image"] = list(images)
            kwargs["guidance_scale"] = float(self.settings["guidance_scale"])
            conditioning = "image-list"
        else:
            image, conditioning = one_input_image(refs, int(self.settings["stitch_height"]))
            images = (image,)
            prompt = (people_prompt(case.prompt, 1, SINGLE.replace("Picture 1", "the input image"), "")
                      if len(refs) == 1 else f"{case.prompt.rstrip()} {STITCHED.format(n=len(refs))}")
            kwargs["image"] = image
        kwargs["prompt"] = prompt
        extra = {"pipeline": self.pipeline_class_name(), "conditioning": conditioning}
        if self.is_plus and len(refs) > 3:
            extra["note"] = "more than 3 input images: outside the range the model card recommends"
        return inp.request(prompt, kwargs, images=images, extra=extra)
