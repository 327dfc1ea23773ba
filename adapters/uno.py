"""UNO (bytedance/UNO): FLUX.1-dev reference code with a DiT LoRA; 1-4 whole reference images.

Runs in its own environment through ``workers/uno_worker.py`` (UNO pins diffusers 0.30.1, transformers
4.43.3). The worker calls ``UNOPipeline(model_type, device, offload, only_lora=True, lora_rank=512)`` and
then ``pipeline(prompt, width, height, guidance, num_steps, seed, ref_imgs=[preprocess_ref(img, ref_size)],
pe)`` exactly as ``inference.py`` does. References go in case order, unmodified (UNO does no face
preprocessing); ``ref_size`` is 512 for one reference and 320 for several (upstream's ``ref_size=-1``
rule). The prompt is the case prompt as is (UNO prompts are plain descriptions). No GT-derived input.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from multiid_bench.adapters._worker import WORKER_DEFAULTS, WorkerAdapter
from multiid_bench.adapters.base import Capabilities, presets_from
from multiid_bench.adapters.pipeline import Request

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case

__all__ = ["UNOAdapter", "UNO_DEFAULTS", "ref_size_for"]

UNO_DEFAULTS: dict[str, Any] = {
    **WORKER_DEFAULTS,
    "family": "uno",
    "model_type": "flux-dev",  # flux-dev | flux-dev-fp8 (with offload) | flux-schnell
    "offload": False,
    "lora_rank": 512,
    "width": 512,
    "height": 512,
    "num_steps": 25,
    "guidance": 4.0,
    "ref_size": None,  # None = 512 for one reference, 320 for several (upstream rule)
    "pe": "d",
    "umo_ckpt": None,  # "repo_id/file" or a path: UMO weights loaded on top (see umo.py)
}


def ref_size_for(n_refs: int, setting: Any) -> int:
    """Upstream's long-side size for reference preprocessing."""
    if setting:
        return int(setting)
    return 512 if n_refs == 1 else 320


class UNOAdapter(WorkerAdapter):
    """UNO: references as ``ref_imgs`` in case order; plain prompt; seed passed to the pipeline."""

    name = "uno"
    version = "1.0"
    worker_script = "uno_worker.py"
    capabilities = Capabilities(
        max_ids=4,
        native_res=(512, 512),
        licence="code Apache-2.0 / LoRA CC BY-NC 4.0 per README (HF card says apache-2.0), on FLUX.1-dev Non-Commercial",
        support_status="best-effort",
        integration="worker",
        prompt_template="{prompt}",
        pip_extra=None,
        upstream_repo="bytedance/UNO",
        upstream_revision="d305981",
        weight_ids=("bytedance-research/UNO:dit_lora.safetensors", "black-forest-labs/FLUX.1-dev:flux1-dev.safetensors",
                    "black-forest-labs/FLUX.1-dev:ae.safetensors", "xlabs-ai/xflux_text_encoders",
                    "openai/clip-vit-large-patch14"),
        defaults=UNO_DEFAULTS,
        description="UNO (FLUX.1-dev + LoRA), up to 4 whole reference images; worker environment.",
        presets=presets_from(paper={}, upstream={
            "width": (512, "inference.py default (d305981)"), "height": (512, "inference.py default"),
            "num_steps": (25, "inference.py default"), "guidance": (4.0, "inference.py default"),
            "ref_size": (None, "inference.py ref_size=-1: 512 for one reference, 320 for several"),
            "pe": ("d", "inference.py default"),
        }),
    )

    def build_request(self, case: "Case", seed: int) -> Request:
        inp = self.case_inputs(case)
        prompt = self.capabilities.prompt_template.format(prompt=case.prompt)
        kwargs = {
            "prompt": prompt, "width": inp.width, "height": inp.height, "guidance": float(self.settings["guidance"]),
            "num_steps": int(self.settings["num_steps"]), "ref_imgs": list(inp.refs),
            "ref_size": ref_size_for(len(inp.refs), self.settings["ref_size"]), "pe": str(self.settings["pe"]),
        }
        return inp.request(prompt, kwargs)
