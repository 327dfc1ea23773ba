"""Convert an insightface IResNet ONNX file (antelopev2's ``glintr100.onnx``) into our torch IResNet.

The released trainer needed onnx2torch and a pickled module (spec §3.3, §6.3). Here the ONNX initialisers are
read with ``onnx`` and mapped onto :func:`arcface_torch.build_iresnet` by the network's structure:

* 3×3 convolutions in graph order = stem conv, then (conv1, conv2) per block; 1×1 convolutions = the
  downsample of each stage; a block whose conv2 has stride 2 opens a new stage (depth per stage);
* a Conv followed by a BatchNormalization keeps both; a Conv whose BN was folded in by the exporter (bias,
  no BN) gets an identity BN that carries the bias;
* the remaining BatchNormalizations are the blocks' pre-activation ``bn1`` and the final ``bn2``; a BN after
  the Gemm is ``features`` (identity if folded); PRelu slopes in order = stem, then one per block.

The result is checked against onnxruntime on a random input before it is returned, so a file with another
layout fails loudly instead of producing wrong embeddings.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from multiid_bench.errors import BadInputError

from .arcface_torch import IResNetConfig, build_iresnet

__all__ = ["iresnet_from_onnx"]

logger = logging.getLogger(__name__)
_EPS = 1e-5


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _bn_params(node: Any, inits: dict[str, np.ndarray], conv_bias: np.ndarray | None = None) -> dict[str, np.ndarray]:
    scale, bias, mean, var = (inits[n] for n in node.input[1:5])
    eps = float(_attr(node, "epsilon", 1e-5))
    mean = mean - conv_bias if conv_bias is not None else mean  # (x + b − μ) = (x − (μ − b))
    return {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var + eps - _EPS}


def _identity_bn(bias: np.ndarray) -> dict[str, np.ndarray]:
    c = len(bias)
    return {"weight": np.ones(c, np.float32), "bias": bias, "running_mean": np.zeros(c, np.float32),
            "running_var": np.full(c, 1.0 - _EPS, np.float32)}


def iresnet_from_onnx(path: str | Path, *, check: bool = True) -> Any:
    """Build an IResNet with the weights of an insightface ``arcface_torch`` ONNX export (e.g. glintr100)."""
    import onnx
    import torch
    from onnx import numpy_helper

    path = Path(path)
    graph = onnx.load(str(path)).graph
    inits = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in graph.initializer}
    nodes = list(graph.node)
    first = next((n.op_type for n in nodes if n.op_type not in ("Identity", "Constant")), "")
    if first in ("Sub", "Mul", "Div"):
        raise BadInputError(f"{path}: the graph normalises its input itself ({first} first); only exports that take "
                            "(p - 127.5) / 127.5 crops (arcface_torch, e.g. glintr100) are supported")
    consumers: dict[str, list[Any]] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def follower(n: Any, op: str) -> Any:
        nxt = consumers.get(n.output[0], [])
        return nxt[0] if len(nxt) == 1 and nxt[0].op_type == op else None

    convs = [n for n in nodes if n.op_type == "Conv"]
    post_bn = {id(follower(c, "BatchNormalization")) for c in convs if follower(c, "BatchNormalization")}
    gemms = [n for n in nodes if n.op_type in ("Gemm", "MatMul")]
    if len(gemms) != 1:
        raise BadInputError(f"{path}: expected one fully connected layer, found {len(gemms)}")
    gemm = gemms[0]
    feat_bn = follower(gemm, "BatchNormalization")
    free_bns = [n for n in nodes if n.op_type == "BatchNormalization" and id(n) not in post_bn and n is not feat_bn]
    prelus = [n for n in nodes if n.op_type == "PRelu"]
    k3 = [c for c in convs if inits[c.input[1]].shape[2] == 3]
    k1 = [c for c in convs if inits[c.input[1]].shape[2] == 1]
    if (len(k3) - 1) % 2 or len(k1) != 4:
        raise BadInputError(f"{path}: {len(k3)} 3x3 and {len(k1)} 1x1 convolutions do not form an IResNet")
    blocks = [(k3[1 + 2 * i], k3[2 + 2 * i]) for i in range((len(k3) - 1) // 2)]
    layers, widths = [], []
    for c1, c2 in blocks:
        if list(_attr(c2, "strides", [1, 1])) == [2, 2]:
            layers.append(0)
            widths.append(int(inits[c1.input[1]].shape[0]))
        layers[-1] += 1
    w_fc = inits[gemm.input[1]]
    if gemm.op_type == "MatMul" or not _attr(gemm, "transB", 0):
        w_fc = w_fc.T
    side = int(round((w_fc.shape[1] / widths[-1]) ** 0.5))
    if len(layers) != 4 or len(prelus) != 1 + len(blocks) or len(free_bns) != len(blocks) + 1:
        raise BadInputError(f"{path}: layer counts do not match an IResNet (stages {layers}, {len(prelus)} PReLU, "
                            f"{len(free_bns)} stand-alone BN)")
    cfg = IResNetConfig(tuple(layers), tuple(widths), int(w_fc.shape[0]), side * 16)  # type: ignore[arg-type]
    sd: dict[str, np.ndarray] = {}

    def put_conv(conv: Any, conv_name: str, bn_name: str) -> None:
        sd[f"{conv_name}.weight"] = inits[conv.input[1]]
        bias = inits[conv.input[2]] if len(conv.input) > 2 and conv.input[2] else None
        bn = follower(conv, "BatchNormalization")
        params = _bn_params(bn, inits, bias) if bn is not None else _identity_bn(
            bias if bias is not None else np.zeros(sd[f"{conv_name}.weight"].shape[0], np.float32))
        sd.update({f"{bn_name}.{k}": v for k, v in params.items()})

    def put_bn(node: Any, name: str) -> None:
        sd.update({f"{name}.{k}": v for k, v in _bn_params(node, inits).items()})

    put_conv(k3[0], "conv1", "bn1")
    sd["prelu.weight"] = inits[prelus[0].input[1]].reshape(-1)
    names = [f"layer{s + 1}.{b}" for s, depth in enumerate(layers) for b in range(depth)]
    for i, (name, (c1, c2)) in enumerate(zip(names, blocks)):
        put_bn(free_bns[i], f"{name}.bn1")
        put_conv(c1, f"{name}.conv1", f"{name}.bn2")
        sd[f"{name}.prelu.weight"] = inits[prelus[1 + i].input[1]].reshape(-1)
        put_conv(c2, f"{name}.conv2", f"{name}.bn3")
    for s, conv in enumerate(k1):
        put_conv(conv, f"layer{s + 1}.0.downsample.0", f"layer{s + 1}.0.downsample.1")
    put_bn(free_bns[-1], "bn2")
    sd["fc.weight"] = w_fc
    sd["fc.bias"] = inits[gemm.input[2]] if len(gemm.input) > 2 else np.zeros(w_fc.shape[0], np.float32)
    sd.update({f"features.{k}": v for k, v in (
        _bn_params(feat_bn, inits) if feat_bn is not None else _identity_bn(np.zeros(w_fc.shape[0], np.float32))
    ).items()})
    model = build_iresnet(cfg)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise BadInputError(f"{path}: conversion left keys unmatched (missing {missing[:4]}, "
                            f"unexpected {unexpected[:4]})")
    if check:
        _check_against_onnxruntime(path, model, cfg)
    logger.info("converted %s to IResNet %s", path, cfg.layers)
    return model


def _check_against_onnxruntime(path: Path, model: Any, cfg: IResNetConfig) -> None:
    import onnxruntime as ort
    import torch

    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, cfg.input_size, cfg.input_size)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    err = float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1e-6))
    if err > 1e-3:
        raise BadInputError(f"{path}: converted IResNet differs from onnxruntime (relative error {err:.2e}); the "
                            "file's layout is not the arcface_torch IResNet this converter expects")
