"""Torch side of the aesthetic scorer: the v2.5 MLP head and the SigLIP vision tower loader.

Imported only from :meth:`multiid_bench.scorers.aesthetic.AestheticScorer.load` (it imports torch and
transformers at module level).
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from multiid_bench.errors import ConfigError

__all__ = ["AestheticHead", "load_head", "load_siglip_vision"]

log = logging.getLogger(__name__)

#: Hidden widths of the published v2.5 head after the SigLIP width: 1152 -> 1024 -> 128 -> 64 -> 16 -> 1.
HEAD_WIDTHS: tuple[int, ...] = (1024, 128, 64, 16, 1)
#: Dropout after each hidden layer, as published (inactive in eval; kept so the state-dict indices
#: ``scoring_head.0/2/4/6/8`` line up with the released file).
_HEAD_DROPOUT: tuple[float, ...] = (0.5, 0.5, 0.5, 0.2)


class AestheticHead(nn.Module):
    """The aesthetic-predictor v2.5 scoring MLP on L2-normalised SigLIP pooled features.

    Args:
        in_features: SigLIP width (1152 for so400m).
    """

    def __init__(self, in_features: int = 1152) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for i, out in enumerate(HEAD_WIDTHS):
            layers.append(nn.Linear(width, out))
            if i < len(_HEAD_DROPOUT):
                layers.append(nn.Dropout(_HEAD_DROPOUT[i]))
            width = out
        self.scoring_head = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, in_features)`` normalised features -> ``(B,)`` scores (the single logit)."""
        return self.scoring_head(features).squeeze(-1)


def load_head(path: Path, in_features: int) -> AestheticHead:
    """The head from a ``.pth`` state dict, loaded with ``weights_only=True`` and strict keys.

    Raises:
        ConfigError: the file is not a state dict of this head (names the file and the key difference).
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: expected a state dict of the aesthetic v2.5 head, got {type(state).__name__}")
    head = AestheticHead(in_features)
    expected = set(head.state_dict())
    if set(state) != expected:
        raise ConfigError(
            f"{path} is not an aesthetic v2.5 head state dict: missing {sorted(expected - set(state))}, "
            f"unexpected {sorted(set(state) - expected)}"
        )
    try:
        head.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as e:  # shape mismatch: a head for another backbone width
        raise ConfigError(f"{path} does not fit a head on {in_features}-d SigLIP features: {e}") from e
    return head.eval()


def load_siglip_vision(folder: Path) -> nn.Module:
    """``SiglipVisionModel`` from a local folder holding ``config.json`` and ``model.safetensors``.

    Accepts a full ``SiglipModel`` checkpoint (the Hub's ``google/siglip-so400m-patch14-384``: the vision
    tensors are taken, the text tower ignored) or a vision-only one. Never touches the network.

    Raises:
        ConfigError: a vision weight is missing from the checkpoint (it would silently stay random).
    """
    from transformers import SiglipVisionModel
    from transformers.utils import logging as hf_logging

    # The full checkpoint's text tower is "unexpected" for a vision model by design; transformers would
    # print a several-hundred-line load report about it. Missing keys are checked below instead.
    previous, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # library code shows no progress bars; the runner owns them
    try:
        model, info = SiglipVisionModel.from_pretrained(
            str(folder), local_files_only=True, output_loading_info=True, dtype=torch.float32
        )
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()
    missing = list(info.get("missing_keys", []))
    if missing:
        raise ConfigError(
            f"{folder}/model.safetensors lacks {len(missing)} SigLIP vision weight(s) (e.g. {missing[:3]}); "
            "it is not a SigLIP checkpoint matching config.json"
        )
    return model.eval()
