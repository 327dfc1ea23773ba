"""InfiniteYou (bytedance/InfiniteYou): FLUX.1-dev + InfuseNet; a single identity (the largest face).

Single-identity method: 2-4 person cases are "not applicable". The worker (``workers/infu_worker.py``;
diffusers 0.31, transformers 4.48, insightface 0.7.3) builds ``InfUFluxPipeline(base_model_path,
infu_model_path=<model_dir>/infu_flux_v1.0/<model_version>, insightface_root_path=<model_dir>/supports/
insightface, model_version)`` and calls ``pipe(id_image, prompt, control_image, width=864, height=1152,
seed, guidance_scale=3.5, num_steps=30, infusenet_conditioning_scale=1.0, infusenet_guidance_start=0.0,
infusenet_guidance_end=1.0)``. Pre-download only the variant folder and ``supports/insightface`` (the
fallback downloads the whole 43 GB repo).

Seeds: upstream treats ``seed=0`` as "random" and seeds globally; the adapter sends 1 instead of 0 (the
sent value is recorded as ``extra.seed_sent``). ``control="gt"`` passes the GT image (resized to the
output) as ``control_image``, whose largest face gives 5 keypoints: the record then lists ``keypoints``
and ``gt_image``. The default ``control="none"`` (black control image) uses no GT input.
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

__all__ = ["InfiniteYouAdapter"]


class InfiniteYouAdapter(WorkerAdapter):
    """InfiniteYou aes_stage2 (default) or sim_stage1; one reference."""

    name = "infiniteyou"
    version = "1.0"
    worker_script = "infu_worker.py"
    capabilities = Capabilities(
        max_ids=1,
        face_references_only=True,  # conditions on face crops / ID embeddings only
        native_res=(864, 1152),
        licence="Apache-2.0 / CC BY-NC 4.0 (+ FLUX.1-dev Non-Commercial, insightface non-commercial)",
        support_status="best-effort",
        integration="worker",
        uses_face_kps=True,
        prompt_template="{prompt}",
        upstream_repo="bytedance/InfiniteYou",
        upstream_revision="aaa6ea5",
        weight_ids=("ByteDance/InfiniteYou:infu_flux_v1.0/aes_stage2", "ByteDance/InfiniteYou:supports/insightface",
                    "black-forest-labs/FLUX.1-dev"),
        defaults={
            **WORKER_DEFAULTS,
            "base_model_path": "black-forest-labs/FLUX.1-dev",
            "model_dir": "ByteDance/InfiniteYou",  # local snapshot folder or hub id
            "model_version": "aes_stage2",  # aes_stage2 | sim_stage1 (paper's choice unknown)
            "width": 864,
            "height": 1152,
            "guidance_scale": 3.5,
            "num_steps": 30,
            "infusenet_conditioning_scale": 1.0,
            "infusenet_guidance_start": 0.0,
            "infusenet_guidance_end": 1.0,
            "control": "none",  # none | gt
        },
        description="InfiniteYou (FLUX + InfuseNet), single identity; worker environment.",
        presets=presets_from(paper={}, upstream={
            "model_version": ("aes_stage2", "test.py --model_version default (aaa6ea5); the paper does not say"),
            "width": (864, "InfUFluxPipeline.__call__ default (test.py passes none)"),
            "height": (1152, "InfUFluxPipeline.__call__ default (test.py passes none)"),
            "guidance_scale": (3.5, "test.py default"), "num_steps": (30, "test.py default"),
            "infusenet_conditioning_scale": (1.0, "test.py default"), "control": ("none", "test.py: no control image"),
        }),
    )

    def build_request(self, case: "Case", seed: int) -> Request:
        width, height = self.output_size()
        control = self.settings["control"]
        if control not in ("none", "gt"):
            raise ConfigError(f"infiniteyou: control must be 'none' or 'gt', got {control!r}")
        refs = tuple(load_refs(case, (0,)))
        s = self.settings
        kwargs: dict[str, Any] = {
            "id_image": refs[0], "prompt": case.prompt, "control_image": None, "width": width, "height": height,
            "guidance_scale": float(s["guidance_scale"]), "num_steps": int(s["num_steps"]),
            "infusenet_conditioning_scale": float(s["infusenet_conditioning_scale"]),
            "infusenet_guidance_start": float(s["infusenet_guidance_start"]),
            "infusenet_guidance_end": float(s["infusenet_guidance_end"]),
        }
        gt_inputs: tuple[str, ...] = ()
        if control == "gt":
            if case.gt is None:
                raise ConfigError(f"infiniteyou control='gt' needs a GT image; case {case.id!r} has none")
            kwargs["control_image"] = load_gt(case).resize((width, height))
            gt_inputs = ("keypoints", "gt_image")
        return Request(prompt=case.prompt, size=(width, height), images=refs, reference_order=(0,),
                       gt_derived_inputs=gt_inputs, call_kwargs=kwargs, extra={"seed_sent": seed or 1})

    def run_request(self, request: Request, seed: int) -> Any:
        return self.pipe(**dict(request.call_kwargs), seed=int(seed) or 1)  # 0 means "random" upstream
