"""FLUX.1 Kontext [dev] through diffusers' ``FluxKontextPipeline`` (diffusers >= 0.35).

Kontext takes one conditioning image. Multi-person cases (``multi_id="stitch"``, the default) get the
references side by side on one canvas, left to right in case order, with a prompt that says so; this is our
documented choice (``--preset upstream``). Under the default ``--preset paper`` (``multi_id="single-only"``)
2-4 person cases are "not applicable", as in the paper: Kontext is in Table 1 (single person) and absent from
Table 2, which holds "only those supporting multi-ID generation" (Sec. 6).
The input is auto-resized by the pipeline to its preferred resolution (max area 1024^2); the output size is
passed explicitly. No GT-derived inputs.
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

__all__ = ["FluxKontextAdapter"]

SINGLE = "Keep the face and identity of the person in the input image."
MULTI = "The input image shows {n} people side by side, from left to right; keep the face and identity of each."


class FluxKontextAdapter(DiffusersAdapter):
    """Kontext-dev: one reference as the input image, or a left-to-right stitch of several."""

    name = "flux-kontext"
    version = "1.0"
    pipeline_class = "FluxKontextPipeline"
    min_diffusers = "0.35.0"
    capabilities = Capabilities(
        max_ids=4,
        native_res=(1024, 1024),
        licence="code Apache-2.0 (diffusers) / weights FLUX.1 [dev] Non-Commercial",
        support_status="best-effort",
        integration="diffusers",
        prompt_template="{prompt} " + SINGLE + " | 2-4 refs (stitched): {prompt} " + MULTI,
        pip_extra="kontext",
        upstream_repo="black-forest-labs/flux",
        upstream_revision="802fb47",
        weight_ids=("black-forest-labs/FLUX.1-Kontext-dev",),
        defaults={
            **DIFFUSERS_DEFAULTS,
            "model_id": "black-forest-labs/FLUX.1-Kontext-dev",
            "num_inference_steps": 28,
            "guidance_scale": 2.5,
            "width": 1024,
            "height": 1024,
            "multi_id": "stitch",  # stitch | single-only
            "stitch_height": 512,
        },
        description="FLUX.1 Kontext [dev]; paper preset: single-person cases only; upstream: stitched canvas.",
        presets=presets_from(
            paper={"multi_id": ("single-only", "paper Sec. 6 and Tables 1/2: Kontext evaluated on the "
                                               "single-person subset only")},
            upstream={"multi_id": ("stitch", "Kontext takes one image; multi-ID by a left-to-right stitch is this "
                                             "toolkit's documented extension (docs/adapters.md section 2)"),
                      "num_inference_steps": (28, "diffusers FluxKontextPipeline default / model card"),
                      "guidance_scale": (2.5, "diffusers FluxKontextPipeline default / model card"),
                      "width": (1024, "FluxKontextPipeline default output (1024^2)"),
                      "height": (1024, "FluxKontextPipeline default output (1024^2)")},
        ),
    )

    def not_applicable_reason(self, case: "Case") -> str | None:
        if self.settings["multi_id"] not in ("stitch", "single-only"):
            raise ConfigError(f"flux-kontext: multi_id must be 'stitch' or 'single-only', got {self.settings['multi_id']!r}")
        if self.settings["multi_id"] == "single-only" and len(case.refs) > 1:
            return f"flux-kontext runs single-identity cases only (multi_id='single-only'); case {case.id!r} has {len(case.refs)}"
        return super().not_applicable_reason(case)

    def build_request(self, case: "Case", seed: int) -> Request:
        inp = self.case_inputs(case)
        refs = inp.refs
        image, conditioning = one_input_image(refs, int(self.settings["stitch_height"]))
        prompt = people_prompt(case.prompt, len(refs), SINGLE, "") if len(refs) == 1 else (
            f"{case.prompt.rstrip()} {MULTI.format(n=len(refs))}")
        kwargs = {
            "image": image, "prompt": prompt, "height": inp.height, "width": inp.width,
            "num_inference_steps": int(self.settings["num_inference_steps"]),
            "guidance_scale": float(self.settings["guidance_scale"]),
        }
        extra = {"conditioning": conditioning, "input_size": list(image.size)}
        return inp.request(prompt, kwargs, images=(image,), extra=extra)
