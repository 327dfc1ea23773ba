"""UMO (bytedance/UMO): RL-tuned weights on top of UNO (``umo``) or OmniGen2 (``umo-omnigen2``).

Which variant the paper reports is not known (spec adapters.md section 3); both are offered. Requests are
built exactly as for the base model; only the weights and the defaults differ:

* UMO-UNO: ``UNOPipeline(...)``, ``pipeline.load_ckpt(UMO_UNO.safetensors)``, then ``pipeline.model.to(device)``
  (``load_ckpt`` leaves the weights on the CPU; UMO's scripts move them back); 768^2, 25 steps, guidance 4.
* UMO-OmniGen2: OmniGen2 with a rank-512 LoRA (``UMO_OmniGen2.safetensors``) fused into the transformer;
  50 steps, text guidance 5, image guidance 2, 1024^2, ``align_res`` as OmniGen2 (pipeline default).
"""
from __future__ import annotations

from dataclasses import replace

from multiid_bench.adapters.base import presets_from
from multiid_bench.adapters.omnigen2 import OMNIGEN2_DEFAULTS, OmniGen2Adapter
from multiid_bench.adapters.uno import UNO_DEFAULTS, UNOAdapter

__all__ = ["UMOAdapter", "UMOOmniGen2Adapter"]

_UMO_LICENCE = "code Apache-2.0 / weights inherit the base model's terms (FLUX.1-dev Non-Commercial for UMO-UNO)"


class UMOAdapter(UNOAdapter):
    """UMO weights on UNO (the default UMO variant here)."""

    name = "umo"
    version = "1.0"
    capabilities = replace(
        UNOAdapter.capabilities,
        licence=_UMO_LICENCE,
        native_res=(768, 768),
        upstream_repo="bytedance/UMO",
        upstream_revision="aada3dc",
        weight_ids=("bytedance-research/UMO:UMO_UNO.safetensors", *UNOAdapter.capabilities.weight_ids),
        defaults={**UNO_DEFAULTS, "family": "umo", "width": 768, "height": 768,
                  "umo_ckpt": "bytedance-research/UMO/UMO_UNO.safetensors"},
        description="UMO on UNO (768^2), up to 4 references; worker environment (UNO's).",
        presets=presets_from(paper={}, upstream={
            "width": (768, "UMO eval/UNO/inference_*.py and demo/UNO/app.py (aada3dc)"),
            "height": (768, "UMO eval/UNO/inference_*.py and demo/UNO/app.py (aada3dc)"),
            "num_steps": (25, "UNO inference defaults used by UMO's eval"), "guidance": (4.0, "same"),
            "ref_size": (None, "UMO eval: ref_size -1 -> 512 for one reference, 320 for several"),
        }),
    )


class UMOOmniGen2Adapter(OmniGen2Adapter):
    """UMO weights on OmniGen2 (LoRA r=512 fused), same prompt wording as OmniGen2."""

    name = "umo-omnigen2"
    version = "1.0"
    capabilities = replace(
        OmniGen2Adapter.capabilities,
        licence="Apache-2.0 / Apache-2.0 (?) (Qwen2.5-VL-3B base has its own licence)",
        upstream_repo="bytedance/UMO",
        upstream_revision="aada3dc",
        weight_ids=("bytedance-research/UMO:UMO_OmniGen2.safetensors", *OmniGen2Adapter.capabilities.weight_ids),
        defaults={**OMNIGEN2_DEFAULTS, "umo_lora": "bytedance-research/UMO/UMO_OmniGen2.safetensors"},
        description="UMO on OmniGen2 (LoRA r=512 fused), 1024^2, align_res off; worker environment (OmniGen2's).",
    )
