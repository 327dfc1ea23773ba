"""Differentiable ArcFace (IResNet) for the training-side identity losses.

The released trainer ran antelopev2's ``glintr100`` (IResNet-100 trained on Glint360K) converted from ONNX to a
pickled torch module with onnx2torch (spec §3.3). Pickles need ``weights_only=False`` and onnx2torch, so we
instead build the IResNet in plain torch with insightface ``arcface_torch``'s parameter names and load a
**state dict** (``.pth`` via ``torch.load(weights_only=True)`` or ``.safetensors``):

* antelopev2's ``glintr100.onnx`` (weight id ``insightface-antelopev2``, sha256-pinned in ``faces.toml``) is
  converted from its ONNX initialisers and checked against onnxruntime by the project's one converter,
  ``multiid_bench.faces.onnx_iresnet`` (the evaluation's ArcFace models use it too);
* the IResNet itself lives in ``multiid_bench.faces.iresnet`` (re-exported here);
* ``arcface_torch`` releases (``glint360k_cosface_r100_fp16_0.1/backbone.pth``) load directly (strict);
* any file registered in a weights manifest loads through ``multiid_bench.weights.resolve`` (sha256-checked).

Input: aligned 112×112 RGB crops normalised as ``(p − 127.5) / 127.5`` (i.e. [−1, 1]); output: raw
(un-normalised) 512-d embeddings, the same convention as insightface's ``face.embedding``.
Sizes are config-driven so tests run a tiny random network through the same code and loader.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multiid_bench.errors import BadInputError
from multiid_bench.faces.iresnet import IRESNET100, IResNetConfig, build_iresnet  # one IResNet for eval and loss

if TYPE_CHECKING:
    import torch

__all__ = ["IResNetConfig", "build_iresnet", "infer_iresnet_config", "load_loss_arcface", "IRESNET100"]

logger = logging.getLogger(__name__)


def infer_iresnet_config(state: dict[str, Any]) -> IResNetConfig:
    """Read depth/width per stage and the embedding size from a state dict's key names and shapes."""
    layers, widths = [], []
    for i in range(1, 5):
        idx = {int(m.group(1)) for k in state if (m := re.match(rf"layer{i}\.(\d+)\.", k))}
        if not idx:
            raise BadInputError(f"not an IResNet state dict: no 'layer{i}.*' keys (found e.g. {sorted(state)[:3]})")
        layers.append(max(idx) + 1)
        widths.append(int(state[f"layer{i}.0.conv1.weight"].shape[0]))
    emb, fc_in = state["fc.weight"].shape
    side = int(round((fc_in / widths[-1]) ** 0.5))
    return IResNetConfig(tuple(layers), tuple(widths), int(emb), side * 16)  # type: ignore[arg-type]


def _read_state_dict(path: Path) -> dict[str, Any]:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled whole modules (onnx2torch output) are refused on purpose
        raise BadInputError(
            f"{path}: not a plain state dict ({exc.__class__.__name__}). Pickled modules such as the "
            "onnx2torch 'glintr100.pth' are not loaded (they execute code); save its state_dict() or use "
            "arcface_torch's backbone.pth / a .safetensors file") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BadInputError(f"{path}: expected a state dict, found {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_loss_arcface(source: str | Path, *, device: str = "cpu", dtype: Any = None,
                      cache_dir: str | Path | None = None, offline: bool | None = None) -> torch.nn.Module:
    """Load the frozen loss-side ArcFace.

    Args:
        source: a local ``.onnx`` / ``.pth`` / ``.safetensors`` path, or a weight id of the manifest, optionally
            with a file name: ``"insightface-antelopev2:glintr100.onnx"`` (resolved, downloaded if allowed and
            sha256-checked by ``multiid_bench.weights.resolve``). ONNX files are converted (``arcface_onnx``).
    Raises:
        MissingWeightsError: the file or weight id is not available (the message names the fetch command).
        BadInputError: the file is not an IResNet or does not match the architecture.
    """
    import torch

    from multiid_bench.errors import MissingWeightsError

    path = Path(source)
    if not path.exists():
        text = str(source)
        if path.suffix in {".pth", ".pt", ".safetensors", ".onnx"} and ":" not in text or "/" in text:
            raise MissingWeightsError(
                f"loss ArcFace weights {path} not found. Use 'insightface-antelopev2:glintr100.onnx' (the model the "
                "released trainer used; 'mbench weights download insightface-antelopev2') or an IResNet state dict")
        from multiid_bench.weights import resolve

        weight_id, _, filename = text.partition(":")
        path = Path(resolve(weight_id, filename or None, cache_dir=cache_dir, offline=offline))
    if path.suffix == ".onnx":
        from .arcface_onnx import iresnet_from_onnx

        model = iresnet_from_onnx(path)
    else:
        state = _read_state_dict(path)
        model = build_iresnet(infer_iresnet_config(state))
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise BadInputError(f"{path}: IResNet keys do not match (missing {missing[:5]}, unexpected "
                                f"{unexpected[:5]}); the file must be an arcface_torch IResNet state dict")
    logger.info("loss ArcFace %s: layers %s", path, model.config.layers)
    return model.to(device=device, dtype=dtype or torch.float32)
