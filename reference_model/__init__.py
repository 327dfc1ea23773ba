"""WithAnyone reference model on diffusers: identity adapter, weight loading, FLUX and Kontext pipelines.

Names are attached lazily so that importing this package (e.g. from the CLI) loads neither torch nor
diffusers::

    from multiid_bench.reference_model import WithAnyoneAdapter, WithAnyonePipeline, load_withanyone_pipeline

See docs/reference_model.md for the design and the mapping to the paper and the official code.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.reference_model.bank import ReferenceBank, build_reference_bank
    from multiid_bench.reference_model.losses import gt_aligned_id_loss, info_nce_extended
    from multiid_bench.reference_model.train_config import TrainConfig, load_config
    from multiid_bench.reference_model.identity_adapter import (
        IdentityConditioning,
        IdentityCrossAttention,
        TokenMask,
        WithAnyoneAdapter,
        build_token_mask,
    )
    from multiid_bench.reference_model.kontext import WithAnyoneKontextPipeline, blur_faces
    from multiid_bench.reference_model.layouts import default_layout, resize_bbox, validate_boxes
    from multiid_bench.reference_model.pipeline import WithAnyonePipeline, load_withanyone_pipeline
    from multiid_bench.reference_model.pipeline_base import WithAnyonePipelineOutput
    from multiid_bench.reference_model.references import ReferenceEncoder, load_reference_encoder
    from multiid_bench.reference_model.sampling import schedule_mu
    from multiid_bench.reference_model.weights import (
        AdapterLoadReport,
        load_adapter_file,
        load_adapter_weights,
        resolve_adapter_file,
        save_adapter,
    )

_LAZY: dict[str, str] = {
    "AdapterLoadReport": "weights",
    "ReferenceBank": "bank",
    "TrainConfig": "train_config",
    "build_reference_bank": "bank",
    "gt_aligned_id_loss": "losses",
    "info_nce_extended": "losses",
    "load_config": "train_config",
    "IdentityConditioning": "identity_adapter",
    "IdentityCrossAttention": "identity_adapter",
    "ReferenceEncoder": "references",
    "TokenMask": "identity_adapter",
    "WithAnyoneAdapter": "identity_adapter",
    "WithAnyoneKontextPipeline": "kontext",
    "WithAnyonePipeline": "pipeline",
    "WithAnyonePipelineOutput": "pipeline_base",
    "blur_faces": "kontext",
    "build_token_mask": "identity_adapter",
    "default_layout": "layouts",
    "load_adapter_file": "weights",
    "load_adapter_weights": "weights",
    "load_reference_encoder": "references",
    "load_withanyone_pipeline": "pipeline",
    "resize_bbox": "layouts",
    "resolve_adapter_file": "weights",
    "save_adapter": "weights",
    "schedule_mu": "sampling",
    "validate_boxes": "layouts",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
