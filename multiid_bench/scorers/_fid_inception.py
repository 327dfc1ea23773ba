"""The FID Inception network (TensorFlow's 2015-12-05 Inception v3 as ported to PyTorch by pytorch-fid).

It is torchvision's ``Inception3`` with 1008 classes and four kinds of block changed to match the
TensorFlow graph the original FID used:

* ``Mixed_5b/5c/5d`` (A), ``Mixed_6b..6e`` (C), ``Mixed_7b`` (E): the 3x3 average pool of the pool
  branch ignores the zero padding (TensorFlow's ``avg_pool`` semantics), i.e. ``count_include_pad=False``;
* ``Mixed_7c`` (E): the pool branch uses a 3x3 *max* pool.

The state-dict names equal torchvision's, so ``pt_inception-2015-12-05-6726825d.pth`` loads strictly.
Input: ``(N, 3, 299, 299)`` in [-1, 1]; output: the 2048-d pool3 features. Imported lazily (torch).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.inception import Inception3, InceptionA, InceptionC, InceptionE

__all__ = ["FidInceptionV3"]


def _pool_without_padding(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _BlockA(InceptionA):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        five = self.branch5x5_2(self.branch5x5_1(x))
        dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return [self.branch1x1(x), five, dbl, self.branch_pool(_pool_without_padding(x))]


class _BlockC(InceptionC):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        seven = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        dbl = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            dbl = layer(dbl)
        return [self.branch1x1(x), seven, dbl, self.branch_pool(_pool_without_padding(x))]


class _BlockE(InceptionE):
    """``max_pool=False``: TF average pool without padding (Mixed_7b); True: max pool (Mixed_7c)."""

    def __init__(self, in_channels: int, *, max_pool: bool) -> None:
        super().__init__(in_channels)
        self.max_pool = max_pool

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        t = self.branch3x3_1(x)
        three = torch.cat([self.branch3x3_2a(t), self.branch3x3_2b(t)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        dbl = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _pool_without_padding(x)
        return [self.branch1x1(x), three, dbl, self.branch_pool(pooled)]


class FidInceptionV3(Inception3):
    """FID Inception v3 returning pool3 features ``(N, 2048)`` for inputs in [-1, 1] at 299x299."""

    def __init__(self) -> None:
        super().__init__(num_classes=1008, aux_logits=False, transform_input=False, init_weights=False)
        self.Mixed_5b = _BlockA(192, pool_features=32)
        self.Mixed_5c = _BlockA(256, pool_features=64)
        self.Mixed_5d = _BlockA(288, pool_features=64)
        self.Mixed_6b = _BlockC(768, channels_7x7=128)
        self.Mixed_6c = _BlockC(768, channels_7x7=160)
        self.Mixed_6d = _BlockC(768, channels_7x7=160)
        self.Mixed_6e = _BlockC(768, channels_7x7=192)
        self.Mixed_7b = _BlockE(1280, max_pool=False)
        self.Mixed_7c = _BlockE(2048, max_pool=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Stem, Mixed_5b..7c, global average pool; no dropout, no classifier."""
        x = self.maxpool1(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))))
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return torch.flatten(self.avgpool(x), 1)


def load_fid_inception(path: str) -> nn.Module:
    """:class:`FidInceptionV3` with the state dict at ``path`` (``weights_only=True``, strict keys)."""
    from multiid_bench.errors import ConfigError

    state = torch.load(path, map_location="cpu", weights_only=True)
    net = FidInceptionV3()
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        raise ConfigError(f"{path} is not the FID Inception state dict (pt_inception-2015-12-05): {e}") from e
    return net.eval()
