"""AdaFace's IR (improved ResNet) backbones, written here because the AdaFace code is not on PyPI.

Module names and order reproduce ``mk-minchul/AdaFace`` ``net.py`` (commit c60eaa7, the one the
official evaluation pinned) so its Lightning checkpoints load with ``strict=True`` after stripping the
``model.`` prefix: ``input_layer``, ``body.<i>.{shortcut_layer,res_layer}``, ``output_layer``.
IR-50 and IR-101 (AdaFace's "ir_101" is 100 layers deep) use the basic IR block; the forward pass
returns ``(L2-normalised 512-d feature, norm)`` like AdaFace's.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["IRBackbone", "ir_backbone"]

# (in_channels, depth, units) per stage; the first unit of each stage has stride 2.
_STAGES = {
    18: [(64, 64, 2), (64, 128, 2), (128, 256, 2), (256, 512, 2)],
    34: [(64, 64, 3), (64, 128, 4), (128, 256, 6), (256, 512, 3)],
    50: [(64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)],
    100: [(64, 64, 3), (64, 128, 13), (128, 256, 30), (256, 512, 3)],
}


class _Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1)


class _BasicBlockIR(nn.Module):
    """BN-Conv-BN-PReLU-Conv-BN residual branch; identity (as a 1x1 max-pool for the stride) or 1x1 conv shortcut."""

    def __init__(self, in_channel: int, depth: int, stride: int) -> None:
        super().__init__()
        if in_channel == depth:
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_channel, depth, (1, 1), stride, bias=False), nn.BatchNorm2d(depth))
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(in_channel),
            nn.Conv2d(in_channel, depth, (3, 3), (1, 1), 1, bias=False),
            nn.BatchNorm2d(depth),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, (3, 3), stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class IRBackbone(nn.Module):
    """IR-N backbone for 112x112 input, 512-d output. ``num_layers`` in {18, 34, 50, 100}."""

    def __init__(self, num_layers: int = 50) -> None:
        super().__init__()
        if num_layers not in _STAGES:
            raise ValueError(f"num_layers must be one of {sorted(_STAGES)}, got {num_layers}")
        self.num_layers = num_layers
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, (3, 3), 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units = []
        for in_c, depth, n in _STAGES[num_layers]:
            units.append(_BasicBlockIR(in_c, depth, 2))
            units.extend(_BasicBlockIR(depth, depth, 1) for _ in range(n - 1))
        self.body = nn.Sequential(*units)
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512), nn.Dropout(0.4), _Flatten(), nn.Linear(512 * 7 * 7, 512),
            nn.BatchNorm1d(512, affine=False))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.output_layer(self.body(self.input_layer(x)))
        norm = torch.norm(x, 2, 1, True)
        return torch.div(x, norm), norm


def ir_backbone(arch: str) -> IRBackbone:
    """``"ir_50"`` or ``"ir_101"`` (AdaFace's names; ir_101 has 100 layers), also ir_18 / ir_34."""
    depth = {"ir_18": 18, "ir_34": 34, "ir_50": 50, "ir_101": 100}.get(arch)
    if depth is None:
        raise ValueError(f"unknown AdaFace architecture {arch!r}; use ir_18, ir_34, ir_50 or ir_101")
    return IRBackbone(depth)
