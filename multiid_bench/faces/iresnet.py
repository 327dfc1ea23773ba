"""The two IResNet families of the face models, in plain torch (neither upstream is on PyPI).

* :class:`IRBackbone` / :func:`ir_backbone`: AdaFace's IR backbones (below);
* :class:`IResNetConfig` / :func:`build_iresnet`: insightface ``arcface_torch``'s IResNet (w600k_r50 =
  IResNet-50, glintr100 = IResNet-100), with its parameter names, so the insightface recognition ONNX
  graphs convert onto it (:mod:`multiid_bench.faces.onnx_iresnet`) and its ``backbone.pth`` loads strict.
  The reference model's loss ArcFace uses the same class (``reference_model/arcface_torch.py``).

AdaFace IR:

Module names and order reproduce ``mk-minchul/AdaFace`` ``net.py`` (commit c60eaa7, the one the
official evaluation pinned) so its Lightning checkpoints load with ``strict=True`` after stripping the
``model.`` prefix: ``input_layer``, ``body.<i>.{shortcut_layer,res_layer}``, ``output_layer``.
IR-50 and IR-101 (AdaFace's "ir_101" is 100 layers deep) use the basic IR block; the forward pass
returns ``(L2-normalised 512-d feature, norm)`` like AdaFace's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from multiid_bench.errors import BadInputError, ConfigError

__all__ = ["IRESNET100", "IRESNET50", "IRBackbone", "IResNetConfig", "build_iresnet", "ir_backbone"]

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


@dataclass(frozen=True)
class IResNetConfig:
    """Depth per stage, width per stage, embedding size; the 112 input gives a 7x7 map after 4 strided stages."""

    layers: tuple[int, int, int, int] = (3, 13, 30, 3)  # IResNet-100
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    embedding_dim: int = 512
    input_size: int = 112

    def __post_init__(self) -> None:
        if self.input_size % 16 != 0:
            raise ConfigError(f"IResNet input_size must be a multiple of 16, got {self.input_size}")


IRESNET100 = IResNetConfig()
IRESNET50 = IResNetConfig(layers=(3, 4, 14, 3))


class _IBasicBlock(nn.Module):
    """arcface_torch's block: BN-Conv-BN-PReLU-Conv(stride)-BN plus identity or 1x1-conv/BN downsample."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (self.downsample(x) if self.downsample is not None else x)


class IResNet(nn.Module):
    """insightface arcface_torch IResNet: raw (un-normalised) embeddings of (x - 127.5) / 127.5 RGB crops."""

    def __init__(self, cfg: IResNetConfig) -> None:
        super().__init__()
        w0 = cfg.widths[0]
        self.config = cfg
        self.conv1 = nn.Conv2d(3, w0, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w0, eps=1e-5)
        self.prelu = nn.PReLU(w0)
        cin = w0
        for i, (depth, width) in enumerate(zip(cfg.layers, cfg.widths), start=1):
            blocks = [_IBasicBlock(cin, width, 2)] + [_IBasicBlock(width, width, 1) for _ in range(depth - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = width
        side = cfg.input_size // 16
        self.bn2 = nn.BatchNorm2d(cin, eps=1e-5)
        self.dropout = nn.Dropout(p=0.0)
        self.fc = nn.Linear(cin * side * side, cfg.embedding_dim)
        self.features = nn.BatchNorm1d(cfg.embedding_dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.config.input_size, self.config.input_size):
            raise BadInputError(f"ArcFace expects {self.config.input_size}x{self.config.input_size} aligned crops, "
                                f"got {tuple(x.shape[-2:])}")
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def build_iresnet(config: IResNetConfig = IRESNET100) -> IResNet:
    """An arcface_torch IResNet in eval mode with frozen parameters (inference and loss use alike)."""
    model = IResNet(config)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
