"""USO (bytedance/USO): FLUX.1-dev + LoRA + SigLIP projector; one *content* (identity) reference.

USO's first image is the subject/identity reference and any further images are *style* references, so
it is a single-identity method here: 2-4 person cases are "not applicable". The worker
(``workers/uno_worker.py``, family ``uso``) mirrors ``inference.py``: ``USOPipeline(model_type, device,
offload, only_lora=True, lora_rank=128)``, SigLIP ``google/siglip-so400m-patch14-384`` attached as
``pipeline.model.vision_encoder``, ``ref_imgs=[preprocess_ref(ref, content_ref=512)]``, no style refs
(``siglip_inputs=[]``), 1024^2, 25 steps, guidance 4. Weights: as ``inference.py``, the worker loads the
checkout's ``.env`` (``env_file`` setting) before importing USO, so ``LORA``/``PROJECTION_MODEL`` (and
``FLUX_DEV``, ``AE``, ``T5``, ``CLIP``, ``SIGLIP_PATH``) come from there; missing paths fail at load (exit 3).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from multiid_bench.adapters._worker import WORKER_DEFAULTS, WorkerAdapter
from multiid_bench.adapters.base import Capabilities, presets_from
from multiid_bench.adapters.pipeline import Request

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case

__all__ = ["USOAdapter"]


class USOAdapter(WorkerAdapter):
    """USO: the single reference as the content image; no style images."""

    name = "uso"
    version = "1.0"
    worker_script = "uno_worker.py"
    capabilities = Capabilities(
        max_ids=1,
        native_res=(1024, 1024),
        licence="Apache-2.0 / Apache-2.0, on FLUX.1-dev Non-Commercial",
        support_status="best-effort",
        integration="worker",
        prompt_template="{prompt}",
        upstream_repo="bytedance/USO",
        upstream_revision="b6784d7",
        weight_ids=("bytedance-research/USO:uso_flux_v1.0/dit_lora.safetensors",
                    "bytedance-research/USO:uso_flux_v1.0/projector.safetensors",
                    "black-forest-labs/FLUX.1-dev:flux1-dev.safetensors", "google/t5-v1_1-xxl",
                    "openai/clip-vit-large-patch14", "google/siglip-so400m-patch14-384"),
        defaults={
            **WORKER_DEFAULTS,
            "family": "uso",
            "model_type": "flux-dev",
            "offload": False,
            "lora_rank": 128,
            "width": 1024,
            "height": 1024,
            "num_steps": 25,
            "guidance": 4.0,
            "content_ref": 512,
            "pe": "d",
            "siglip_path": "google/siglip-so400m-patch14-384",
            "env_file": ".env",  # relative to the USO checkout (the worker's working directory)
        },
        description="USO (single identity as content reference, no style refs); worker environment.",
        presets=presets_from(paper={}, upstream={
            "width": (1024, "inference.py default (b6784d7)"), "height": (1024, "inference.py default"),
            "num_steps": (25, "inference.py default"), "guidance": (4.0, "inference.py default"),
            "content_ref": (512, "inference.py default"), "lora_rank": (128, "inference.py default"),
        }),
    )

    def build_request(self, case: "Case", seed: int) -> Request:
        inp = self.case_inputs(case, (0,))
        prompt = case.prompt
        kwargs = {
            "prompt": prompt, "width": inp.width, "height": inp.height, "guidance": float(self.settings["guidance"]),
            "num_steps": int(self.settings["num_steps"]), "ref_imgs": list(inp.refs),
            "ref_size": int(self.settings["content_ref"]), "pe": str(self.settings["pe"]), "style_imgs": [],
        }
        return inp.request(prompt, kwargs)
