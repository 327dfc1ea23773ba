"""OmniGen2 (VectorSpaceLab/OmniGen2): not in diffusers; the repository's pipeline in its own environment.

The worker (``workers/omnigen2_worker.py``) loads ``OmniGen2Pipeline.from_pretrained(model_path,
trust_remote_code=True)`` and swaps in ``OmniGen2Transformer2DModel.from_pretrained(model_path,
subfolder="transformer")`` as ``inference.py`` does, then calls ``pipe(prompt, input_images, width, height,
num_inference_steps=50, max_sequence_length=1024, text_guidance_scale=5.0, image_guidance_scale=2.0,
cfg_range=(0, 1), negative_prompt=<repo default>, align_res, generator)``. ``align_res`` is a setting whose
default is upstream's: ``inference.py`` (0f72fa9) does not pass it, so the pipeline's ``align_res=True``
applies, and with exactly one input image the output takes that image's size (spec quirk; the recorded
``output_size`` says so). ``-S align_res=false`` keeps the requested size, as OmniContext's
``--disable_align_res`` does for in-context generation.
OmniGen2 names inputs in words; our fixed template says "Person k is the person in image k." in case order.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from multiid_bench.adapters._common import people_prompt
from multiid_bench.adapters._worker import WORKER_DEFAULTS, WorkerAdapter
from multiid_bench.adapters.base import Capabilities, presets_from
from multiid_bench.adapters.pipeline import Request

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case

__all__ = ["OMNIGEN2_DEFAULTS", "OmniGen2Adapter"]

SINGLE = "The person is the person in image 1."
EACH = "Person {k} is the person in image {k}."
# The repository's default negative prompt (inference.py), kept verbatim in meaning.
NEGATIVE = ("(((deformed))), blurry, over saturation, bad anatomy, disfigured, poorly drawn face, mutation, "
            "mutated, (extra_limb), (ugly), (poorly drawn hands), fused fingers, messy drawing, broken legs censor, "
            "censored, censor_bar")

OMNIGEN2_DEFAULTS: dict[str, Any] = {
    **WORKER_DEFAULTS,
    "model_path": "OmniGen2/OmniGen2",
    "dtype": "bfloat16",
    "width": 1024,
    "height": 1024,
    "num_inference_steps": 50,
    "max_sequence_length": 1024,
    "text_guidance_scale": 5.0,
    "image_guidance_scale": 2.0,  # README suggests 2.5-3.0 for in-context generation; repo default 2.0
    "cfg_range": (0.0, 1.0),
    "negative_prompt": NEGATIVE,
    "align_res": True,  # pipeline default, which inference.py keeps (one input image -> output at its size)
    "umo_lora": None,  # UMO-OmniGen2 LoRA ("repo/file" or a path), see umo.py
}


class OmniGen2Adapter(WorkerAdapter):
    """OmniGen2: references as ``input_images`` in case order, "image k" wording, upstream ``align_res``."""

    name = "omnigen2"
    version = "1.0"
    worker_script = "omnigen2_worker.py"
    capabilities = Capabilities(
        max_ids=4,
        native_res=(1024, 1024),
        licence="Apache-2.0 / Apache-2.0 (?) (Qwen2.5-VL-3B base has its own licence)",
        support_status="best-effort",
        integration="worker",
        prompt_template="{prompt} " + SINGLE + " | n>1: {prompt} " + EACH + " (k = 1..n)",
        upstream_repo="VectorSpaceLab/OmniGen2",
        upstream_revision="0f72fa9",
        weight_ids=("OmniGen2/OmniGen2",),
        defaults=OMNIGEN2_DEFAULTS,
        description="OmniGen2 (repository pipeline), 'image k' wording; worker environment.",
        presets=presets_from(paper={}, upstream={
            "num_inference_steps": (50, "inference.py --num_inference_step default (0f72fa9)"),
            "text_guidance_scale": (5.0, "inference.py default"), "image_guidance_scale": (2.0, "inference.py default"),
            "cfg_range": ((0.0, 1.0), "inference.py defaults"), "negative_prompt": (NEGATIVE, "inference.py default"),
            "width": (1024, "inference.py default"), "height": (1024, "inference.py default"),
            "align_res": (True, "inference.py passes none: OmniGen2Pipeline.__call__ default align_res=True"),
        }),
    )

    def build_request(self, case: "Case", seed: int) -> Request:
        inp = self.case_inputs(case)
        prompt = people_prompt(case.prompt, len(inp.refs), SINGLE, EACH)
        kwargs = {
            "prompt": prompt, "input_images": list(inp.refs), "width": inp.width, "height": inp.height,
            "num_inference_steps": int(self.settings["num_inference_steps"]),
            "max_sequence_length": int(self.settings["max_sequence_length"]),
            "text_guidance_scale": float(self.settings["text_guidance_scale"]),
            "image_guidance_scale": float(self.settings["image_guidance_scale"]),
            "cfg_range": [float(v) for v in self.settings["cfg_range"]],
            "negative_prompt": str(self.settings["negative_prompt"]), "align_res": bool(self.settings["align_res"]),
        }
        return inp.request(prompt, kwargs)
