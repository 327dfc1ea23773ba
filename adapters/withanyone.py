"""WithAnyone, the paper's own model, through ``multiid_bench.reference_model``'s ``WithAnyonePipeline``.

In-process (FLUX.1-dev on diffusers + the released ``withanyone.safetensors``; the weights store resolves the
adapter file, the reference encoder comes from ``multiid_bench.faces``). Defaults follow the official batch
script ``infer_withanyone.py``: 512^2, 25 steps, guidance 4.0, the official mu schedule, lambda_arc 1.0 /
lambda_sig 0.0 (the README's ArcFace-only setting; which setting produced the paper's table is not stated).

WithAnyone **needs one face box per reference** and the benchmark gives it the **GT** boxes (declared as
``boxes`` in ``gt_derived_inputs``), mapped to the output like the official script: a square crop of the GT
that keeps every face (``box_mapping="square-crop"``; deterministic, where the script used an unseeded random
offset), scaled to the output size; ``"stretch"`` scales each axis of the whole GT instead. References go in
case order, box i with reference i; the pipeline detects and embeds each reference's most confident face.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from multiid_bench.adapters._common import fit_size, gt_size, load_refs, square_crop_boxes
from multiid_bench.adapters.base import Capabilities, scale_boxes
from multiid_bench.adapters.pipeline import PipelineAdapter, Request
from multiid_bench.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from multiid_bench.data.case import Case

__all__ = ["WithAnyoneBenchAdapter"]

BOX_MAPPINGS = ("square-crop", "stretch")


class WithAnyoneBenchAdapter(PipelineAdapter):
    """WithAnyone (FLUX.1-dev) as a benchmark adapter: references + GT boxes scaled to the output, seed passed
    to the pipeline. (The model's identity module is ``reference_model.identity_adapter.WithAnyoneAdapter``.)"""

    name = "withanyone"
    version = "1.0"
    capabilities = Capabilities(
        max_ids=4,
        face_references_only=True,  # conditions on face crops / ID embeddings only
        native_res=(512, 512),
        licence="code Apache-2.0 / weights on FLUX.1-dev Non-Commercial, research only; insightface non-commercial",
        support_status="best-effort",
        integration="diffusers",
        needs_boxes=True,
        prompt_template="{prompt}",
        upstream_repo="Doby-Xu/WithAnyone",
        upstream_revision="996d152",
        weight_ids=("WithAnyone/WithAnyone:withanyone.safetensors", "black-forest-labs/FLUX.1-dev",
                    "insightface antelopev2 (scrfd_10g_bnkps, glintr100)"),
        gt_derived_inputs=("boxes",),
        defaults={
            "flux": "black-forest-labs/FLUX.1-dev",  # diffusers folder or hub id
            "adapter": None,  # None = withanyone.safetensors through the weights store; or a file path
            "width": 512,
            "height": 512,
            "num_inference_steps": 25,
            "guidance_scale": 4.0,
            "lambda_arc": 1.0,
            "lambda_sig": 0.0,
            "schedule": "official",  # official (mu quirk of the released code) | diffusers
            "numerics": "default",  # default (fp32 Euler, rounding) | official (released dtype choices; -S numerics=official)
            "box_mapping": "square-crop",
        },
        description="WithAnyone reference model (FLUX.1-dev + identity adapter), GT boxes; in-process.",
    )

    def _load_pipeline(self, device: str) -> Any:
        from multiid_bench.adapters._common import require

        require("diffusers", extra=None, adapter=self.name)
        from multiid_bench.reference_model.pipeline import load_withanyone_pipeline

        return load_withanyone_pipeline(flux=self.settings["flux"], adapter=self.settings["adapter"], device=device,
                                        siglip=float(self.settings["lambda_sig"]) > 0)

    def output_size(self) -> tuple[int, int]:
        w, h = super().output_size()
        return fit_size(w, h, 16)  # FLUX latents need multiples of 16

    def build_request(self, case: "Case", seed: int) -> Request:
        width, height = self.output_size()
        mapping = self.settings["box_mapping"]
        if mapping not in BOX_MAPPINGS:
            raise ConfigError(f"withanyone: box_mapping must be one of {BOX_MAPPINGS}, got {mapping!r}")
        src = gt_size(case)
        if mapping == "square-crop":
            crop, inside = square_crop_boxes(case.boxes, src)
            boxes = scale_boxes(inside, (round(crop[2] - crop[0]), round(crop[3] - crop[1])), (width, height))
        else:
            boxes = scale_boxes(case.boxes, src, (width, height))
        order = tuple(range(len(case.refs)))
        refs = tuple(load_refs(case, order))
        kwargs = {
            "prompt": case.prompt, "reference_images": list(refs), "boxes": [list(b) for b in boxes],
            "height": height, "width": width, "num_inference_steps": int(self.settings["num_inference_steps"]),
            "guidance_scale": float(self.settings["guidance_scale"]), "lambda_arc": float(self.settings["lambda_arc"]),
            "lambda_sig": float(self.settings["lambda_sig"]), "schedule": str(self.settings["schedule"]),
            "numerics": str(self.settings["numerics"]),
        }
        return Request(prompt=case.prompt, size=(width, height), images=refs, reference_order=order, boxes=boxes,
                       gt_derived_inputs=("boxes",), call_kwargs=kwargs,
                       extra={"boxes_output_px": [list(b) for b in boxes], "box_mapping": mapping})

    def run_request(self, request: Request, seed: int) -> "tuple[Image.Image, dict[str, Any]]":
        out = self.pipe(**dict(request.call_kwargs), seed=int(seed))
        images = getattr(out, "images", out)
        facts = {k: getattr(out, k) for k in ("box_source", "mu", "schedule", "numerics") if hasattr(out, k)}
        return images[0], facts
