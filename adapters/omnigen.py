"""OmniGen (v1) through diffusers' ``OmniGenPipeline`` (diffusers >= 0.33).

OmniGen needs every input image named in the prompt with ``<img><|image_k|></img>``. Our fixed template
appends one sentence per reference in case order ("Person k is <img><|image_k|></img>."), neutral about
positions, so no GT layout leaks into the prompt. Defaults are the repository's: 50 steps, guidance 2.5,
image guidance 1.6, 1024^2, input images capped at 1024 px.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from multiid_bench.adapters._common import people_prompt
from multiid_bench.adapters._diffusers import DIFFUSERS_DEFAULTS, DiffusersAdapter
from multiid_bench.adapters.base import Capabilities, presets_from
from multiid_bench.adapters.pipeline import Request

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case

__all__ = ["OmniGenAdapter", "placeholder"]

SINGLE = "The person is <img><|image_1|></img>."
EACH = "Person {k} is <img><|image_{k}|></img>."


def placeholder(k: int) -> str:
    """OmniGen's tag for the k-th (1-based) input image."""
    return f"<img><|image_{k}|></img>"


class OmniGenAdapter(DiffusersAdapter):
    """OmniGen-v1: references as ``input_images``, one placeholder per reference in the prompt."""

    name = "omnigen"
    version = "1.0"
    pipeline_class = "OmniGenPipeline"
    min_diffusers = "0.33.0"
    capabilities = Capabilities(
        max_ids=4,
        native_res=(1024, 1024),
        licence="MIT / MIT",
        support_status="best-effort",
        integration="diffusers",
        pip_extra="omnigen",
        prompt_template="{prompt} " + SINGLE + " | n>1: {prompt} " + EACH + " (k = 1..n)",
        upstream_repo="VectorSpaceLab/OmniGen",
        upstream_revision="d475201",
        weight_ids=("Shitao/OmniGen-v1-diffusers",),
        defaults={
            **DIFFUSERS_DEFAULTS,
            "model_id": "Shitao/OmniGen-v1-diffusers",
            "num_inference_steps": 50,
            "guidance_scale": 2.5,
            "img_guidance_scale": 1.6,
            "max_input_image_size": 1024,
            "width": 1024,
            "height": 1024,
        },
        description="OmniGen v1 (diffusers), <img><|image_k|></img> placeholders in case order.",
        presets=presets_from(paper={}, upstream={
            "model_id": ("Shitao/OmniGen-v1-diffusers", "OmniGen README: diffusers OmniGenPipeline"),
            "num_inference_steps": (50, "OmniGen README / OmniGenPipeline default"),
            "guidance_scale": (2.5, "OmniGen README"), "img_guidance_scale": (1.6, "OmniGen README"),
            "width": (1024, "OmniGen README"), "height": (1024, "OmniGen README"),
        }),
    )

    def build_request(self, case: "Case", seed: int) -> Request:
        inp = self.case_inputs(case)
        prompt = people_prompt(case.prompt, len(inp.refs), SINGLE, EACH)
        kwargs = {
            "prompt": prompt,
            "input_images": list(inp.refs),
            "height": inp.height,
            "width": inp.width,
            "num_inference_steps": int(self.settings["num_inference_steps"]),
            "guidance_scale": float(self.settings["guidance_scale"]),
            "img_guidance_scale": float(self.settings["img_guidance_scale"]),
            "max_input_image_size": int(self.settings["max_input_image_size"]),
        }
        return inp.request(prompt, kwargs)
