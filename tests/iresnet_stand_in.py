"""Stand-in IResNets for converter and loss tests: random weights with non-trivial BN statistics and PReLU
slopes, so that a wrong key or parameter mapping cannot pass by accident (shared by faces/ and reference_model/)."""
from __future__ import annotations

import torch

from multiid_bench.faces.iresnet import IResNetConfig, build_iresnet


def random_bn_iresnet(layers: tuple[int, int, int, int], widths: tuple[int, int, int, int], embedding: int,
                      seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = build_iresnet(IResNetConfig(layers, widths, embedding))
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.normal_(1, 0.1)
                mod.bias.normal_(0, 0.1)
            elif isinstance(mod, torch.nn.PReLU):
                mod.weight.uniform_(0.1, 0.3)
    return net
