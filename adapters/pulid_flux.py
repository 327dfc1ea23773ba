"""PuLID-FLUX (ToTheBeginning/PuLID): FLUX.1-dev reference code + PuLID ID encoder; a single identity.

Single-identity method: 2-4 person cases are "not applicable". The worker (``workers/pulid_worker.py``)
builds ``app_flux.FluxGenerator(model_name, device, offload, aggressive_offload, args)`` (args: fp8,
onnx_provider, pretrained_model) and calls ``generate_image(width, height, num_steps, start_step, guidance,
seed, prompt, id_image, id_weight, neg_prompt, true_cfg, timestep_to_start_cfg, max_sequence_length)`` with
the demo defaults: 896x1152, 28 steps, start_step 0 (the docs suggest 4 for photorealism), guidance 4,
id_weight 1, true_cfg 1 (fake CFG), max_sequence_length 128. The ID embedding (antelopev2 + EVA02-CLIP of the
aligned, parsed face) is computed inside PuLID from the reference. No GT-derived input.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from multiid_bench.adapters._worker import WORKER_DEFAULTS, WorkerAdapter
from multiid_bench.adapters.base import Capabilities, presets_from
from multiid_bench.adapters.pipeline import Request

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case

__all__ = ["PuLIDFluxAdapter"]


class PuLIDFluxAdapter(WorkerAdapter):
    """PuLID-FLUX v0.9.1 with the demo's settings; one reference."""

    name = "pulid-flux"
    version = "1.0"
    worker_script = "pulid_worker.py"
    capabilities = Capabilities(
        max_ids=1,
        face_references_only=True,  # conditions on face crops / ID embeddings only
        native_res=(896, 1152),
        licence="Apache-2.0 / Apache-2.0 (HF), on FLUX.1-dev Non-Commercial; insightface non-commercial",
        support_status="best-effort",
        integration="worker",
        prompt_template="{prompt}",
        upstream_repo="ToTheBeginning/PuLID",
        upstream_revision="1aa2fc7",
        weight_ids=("guozinan/PuLID:pulid_flux_v0.9.1.safetensors", "QuanSun/EVA-CLIP:EVA02_CLIP_L_336_psz14_s6B",
                    "DIAMONIK7777/antelopev2", "black-forest-labs/FLUX.1-dev:flux1-dev.safetensors",
                    "facexlib retinaface + parsing"),
        defaults={
            **WORKER_DEFAULTS,
            "model_name": "flux-dev",
            "offload": False,
            "aggressive_offload": False,
            "fp8": False,
            "onnx_provider": "gpu",
            "pretrained_model": None,  # None = download pulid_flux_<version> from guozinan/PuLID
            "pulid_version": "v0.9.1",
            "width": 896,
            "height": 1152,
            "num_steps": 28,
            "start_step": 0,
            "guidance": 4.0,
            "id_weight": 1.0,
            "neg_prompt": "",
            "true_cfg": 1.0,
            "timestep_to_start_cfg": 1,
            "max_sequence_length": 128,
        },
        description="PuLID-FLUX v0.9.1, single identity; worker environment.",
        presets=presets_from(paper={}, upstream={
            "pulid_version": ("v0.9.1", "app_flux.py default (1aa2fc7)"),
            "width": (896, "app_flux.py demo default"), "height": (1152, "app_flux.py demo default"),
            "num_steps": (28, "app_flux.py demo slider default"), "start_step": (0, "app_flux.py demo default"),
            "guidance": (4.0, "app_flux.py demo default"), "id_weight": (1.0, "app_flux.py demo default"),
            "true_cfg": (1.0, "app_flux.py demo default (fake CFG)"),
        }),
    )

    def build_request(self, case: "Case", seed: int) -> Request:
        inp = self.case_inputs(case, (0,))
        s = self.settings
        kwargs = {
            "width": inp.width, "height": inp.height, "num_steps": int(s["num_steps"]), "start_step": int(s["start_step"]),
            "guidance": float(s["guidance"]), "prompt": case.prompt, "id_image": inp.refs[0],
            "id_weight": float(s["id_weight"]), "neg_prompt": str(s["neg_prompt"]), "true_cfg": float(s["true_cfg"]),
            "timestep_to_start_cfg": int(s["timestep_to_start_cfg"]),
            "max_sequence_length": int(s["max_sequence_length"]),
        }
        return inp.request(case.prompt, kwargs)
