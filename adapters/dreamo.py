"""DreamO (bytedance/DreamO): FLUX.1-dev + DreamO LoRAs; each reference is an ``"id"`` condition.

Runs in its own environment (pins diffusers 0.33.1, a facexlib fork) through ``workers/dreamo_worker.py``,
which mirrors the demo: ``Generator(version, offload, no_turbo, quant, device)``; ``pre_condition(ref_images,
ref_tasks=["id"] * n, ref_res=512, seed)`` (facexlib alignment and BiSeNet whitening of the non-face area,
inside DreamO); then ``dreamo_pipeline(prompt, width, height, num_inference_steps, guidance_scale,
ref_conds, generator=torch.Generator("cpu").manual_seed(seed), true_cfg_scale=1, ...,
first_step_guidance_scale=guidance)``. References go in case order (``idx = position + 1``). DreamO has no
layout input; the prompt is the case prompt as is. The demo exposes 2 slots; the code admits up to 9, so
3-4 person cases run but are beyond what the authors show.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from multiid_bench.adapters._worker import WORKER_DEFAULTS, WorkerAdapter
from multiid_bench.adapters.base import Capabilities, presets_from
from multiid_bench.adapters.pipeline import Request

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case

__all__ = ["DreamOAdapter"]


class DreamOAdapter(WorkerAdapter):
    """DreamO v1.1 with turbo (12 steps, guidance 4.5, 1024^2), one ``id`` task per reference."""

    name = "dreamo"
    version = "1.0"
    worker_script = "dreamo_worker.py"
    capabilities = Capabilities(
        max_ids=4,
        native_res=(1024, 1024),
        licence="Apache-2.0 / Apache-2.0 (HF card), on FLUX.1-dev Non-Commercial",
        support_status="best-effort",
        integration="worker",
        prompt_template="{prompt}",
        upstream_repo="bytedance/DreamO",
        upstream_revision="461e35b",
        weight_ids=("ByteDance/DreamO", "black-forest-labs/FLUX.1-dev", "alimama-creative/FLUX.1-Turbo-Alpha",
                    "PramaLLC/BEN2", "facexlib retinaface_resnet50 + parsing_bisenet"),
        defaults={
            **WORKER_DEFAULTS,
            "dreamo_version": "v1.1",
            "offload": False,
            "no_turbo": False,
            "quant": "default",  # default | int8 | nunchaku
            "width": 1024,
            "height": 1024,
            "num_steps": 12,  # turbo on; 25+ with no_turbo
            "guidance": 4.5,  # v1.1 (3.5 for v1)
            "ref_res": 512,
            "true_cfg": 1.0,
            "cfg_start_step": 0,
            "cfg_end_step": 0,
            "neg_prompt": "",
            "neg_guidance": 3.5,
            "first_step_guidance": 0.0,  # 0 = same as guidance
        },
        description="DreamO v1.1 (turbo), one 'id' condition per reference; worker environment.",
        presets=presets_from(paper={}, upstream={
            "dreamo_version": ("v1.1", "app.py --version default (461e35b)"),
            "no_turbo": (False, "app.py: turbo LoRA on by default"),
            "num_steps": (12, "app.py Number of steps slider default (461e35b)"), "guidance": (4.5, "app.py Guidance slider default for v1.1"),
            "width": (1024, "app.py default"), "height": (1024, "app.py default"), "ref_res": (512, "app.py default"),
            "true_cfg": (1.0, "app.py default"),
        }),
    )

    def build_request(self, case: "Case", seed: int) -> Request:
        inp = self.case_inputs(case)
        s = self.settings
        guidance = float(s["guidance"])
        kwargs = {
            "prompt": case.prompt, "width": inp.width, "height": inp.height, "ref_images": list(inp.refs),
            "ref_tasks": ["id"] * len(inp.refs), "ref_res": int(s["ref_res"]), "num_inference_steps": int(s["num_steps"]),
            "guidance_scale": guidance, "true_cfg_scale": float(s["true_cfg"]),
            "true_cfg_start_step": int(s["cfg_start_step"]), "true_cfg_end_step": int(s["cfg_end_step"]),
            "negative_prompt": str(s["neg_prompt"]), "neg_guidance_scale": float(s["neg_guidance"]),
            "first_step_guidance_scale": float(s["first_step_guidance"]) or guidance,
        }
        return inp.request(case.prompt, kwargs)
