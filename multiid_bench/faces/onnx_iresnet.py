"""insightface recognition ONNX (w600k_r50, glintr100) -> torch IResNet, checked against onnxruntime.

Why: onnxruntime from PyPI is CPU-only, and an IResNet-100 costs ~24 GFLOP per face; on torch the same
weights run batched on any device. The one converter of the project: the face models
(``multiid_bench.faces.models``) and the reference model's loss ArcFace (``reference_model/arcface_torch``)
both call :func:`iresnet_from_onnx`.

The ONNX initialisers are read with ``onnx`` and mapped onto :func:`~multiid_bench.faces.iresnet.build_iresnet`
by the network's structure, not by node names (exporters rename nodes):

* 3x3 convolutions in graph order = stem conv, then (conv1, conv2) per block; 1x1 convolutions = the
  downsample of each stage; a block whose conv2 has stride 2 opens a new stage (depth per stage);
* a Conv followed by a BatchNormalization keeps both; a Conv whose BN the exporter folded in (bias, no BN)
  gets a BN that carries the bias (identity scale);
* the remaining BatchNormalizations are the blocks' pre-activation ``bn1`` and the final ``bn2``; a BN after
  the Gemm is ``features`` (identity if folded); PRelu slopes in order = stem, then one per block.

The converted network is run next to onnxruntime on the same file before it is returned
(:func:`max_abs_diff_vs_onnxruntime`), so a file with another layout fails loudly instead of giving wrong
embeddings. Graphs that normalise their input themselves (mxnet-converted packs: Sub/Mul first) are refused
with :class:`NotAnIResNetGraph`; the face loader then keeps onnxruntime for them.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from multiid_bench.errors import BadInputError

__all__ = ["NotAnIResNetGraph", "iresnet_from_onnx", "max_abs_diff_vs_onnxruntime"]

log = logging.getLogger(__name__)
_EPS = 1e-5
#: Load-time agreement with onnxruntime: max |torch - ort| <= this x max(1, max |ort|) on random crops.
CHECK_TOLERANCE = 1e-4


class NotAnIResNetGraph(BadInputError):
    """The ONNX file is not an arcface_torch IResNet export this converter understands."""


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _bn_params(node: Any, inits: dict[str, np.ndarray], conv_bias: np.ndarray | None = None) -> dict[str, np.ndarray]:
    scale, bias, mean, var = (inits[n] for n in node.input[1:5])
    eps = float(_attr(node, "epsilon", 1e-5))
    mean = mean - conv_bias if conv_bias is not None else mean  # (x + b - mu) = (x - (mu - b))
    return {"weight": scale, "bias": bias, "running_mean": mean, "running_var": var + eps - _EPS}


def _identity_bn(bias: np.ndarray) -> dict[str, np.ndarray]:
    c = len(bias)
    return {"weight": np.ones(c, np.float32), "bias": bias, "running_mean": np.zeros(c, np.float32),
            "running_var": np.full(c, 1.0 - _EPS, np.float32)}


def _state_dict_from_graph(path: Path, graph: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """(IResNetConfig, state dict as numpy) read from the graph's structure; raises NotAnIResNetGraph."""
    from onnx import numpy_helper

    from multiid_bench.faces.iresnet import IResNetConfig

    inits = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in graph.initializer}
    for n in graph.node:  # exporters share equal tensors (e.g. untrained BN statistics) through Identity nodes
        if n.op_type == "Identity" and n.input[0] in inits:
            inits[n.output[0]] = inits[n.input[0]]
        elif n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            inits[n.output[0]] = numpy_helper.to_array(n.attribute[0].t).astype(np.float32)
    nodes = list(graph.node)
    first = next((n.op_type for n in nodes if n.op_type not in ("Identity", "Constant")), "")
    if first in ("Sub", "Mul", "Div"):
        raise NotAnIResNetGraph(f"{path}: the graph normalises its input itself ({first} first); only exports that "
                                "take (p - 127.5) / 127.5 crops (arcface_torch: w600k_r50, glintr100) convert")
    consumers: dict[str, list[Any]] = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def follower(n: Any, op: str) -> Any:
        nxt = consumers.get(n.output[0], [])
        return nxt[0] if len(nxt) == 1 and nxt[0].op_type == op else None

    convs = [n for n in nodes if n.op_type == "Conv" and n.input[1] in inits]
    post_bn = {id(follower(c, "BatchNormalization")) for c in convs if follower(c, "BatchNormalization")}
    gemms = [n for n in nodes if n.op_type in ("Gemm", "MatMul")]
    if len(gemms) != 1 or len(convs) < 3:
        raise NotAnIResNetGraph(f"{path}: {len(convs)} convolutions and {len(gemms)} fully connected layers: "
                                "not an IResNet")
    gemm = gemms[0]
    feat_bn = follower(gemm, "BatchNormalization")
    free_bns = [n for n in nodes if n.op_type == "BatchNormalization" and id(n) not in post_bn and n is not feat_bn]
    prelus = [n for n in nodes if n.op_type == "PRelu"]
    k3 = [c for c in convs if inits[c.input[1]].shape[2] == 3]
    k1 = [c for c in convs if inits[c.input[1]].shape[2] == 1]
    if (len(k3) - 1) % 2 or len(k1) != 4:
        raise NotAnIResNetGraph(f"{path}: {len(k3)} 3x3 and {len(k1)} 1x1 convolutions do not form an IResNet")
    blocks = [(k3[1 + 2 * i], k3[2 + 2 * i]) for i in range((len(k3) - 1) // 2)]
    layers: list[int] = []
    widths: list[int] = []
    for c1, c2 in blocks:
        if list(_attr(c2, "strides", [1, 1])) == [2, 2]:
            layers.append(0)
            widths.append(int(inits[c1.input[1]].shape[0]))
        if not layers:
            raise NotAnIResNetGraph(f"{path}: the first block does not downsample; not an IResNet")
        layers[-1] += 1
    if gemm.input[1] not in inits:
        raise NotAnIResNetGraph(f"{path}: the fully connected layer's weight is not a constant")
    w_fc = inits[gemm.input[1]]
    if gemm.op_type == "MatMul" or not _attr(gemm, "transB", 0):
        w_fc = w_fc.T
    if len(layers) != 4 or len(prelus) != 1 + len(blocks) or len(free_bns) != len(blocks) + 1:
        raise NotAnIResNetGraph(f"{path}: layer counts do not match an IResNet (stages {layers}, {len(prelus)} PReLU, "
                                f"{len(free_bns)} stand-alone BN)")
    side = int(round((w_fc.shape[1] / widths[-1]) ** 0.5))
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
    return cfg, sd


def iresnet_from_onnx(path: str | Path, *, check: bool = True) -> Any:
    """An :class:`~multiid_bench.faces.iresnet.IResNet` (eval, frozen, CPU fp32) with the weights of an
    insightface ``arcface_torch`` ONNX export (w600k_r50, glintr100).

    Args:
        path: the ``.onnx`` file.
        check: run the converted network and onnxruntime on the same random crops and refuse a mismatch.

    Raises:
        NotAnIResNetGraph: the graph is not an IResNet this converter maps (or normalises its input itself).
        BadInputError: the conversion disagrees with onnxruntime.
    """
    import onnx
    import torch

    from multiid_bench.faces.iresnet import build_iresnet

    path = Path(path)
    cfg, sd = _state_dict_from_graph(path, onnx.load(str(path)).graph)
    model = build_iresnet(cfg)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise NotAnIResNetGraph(f"{path}: conversion left keys unmatched (missing {missing[:4]}, "
                                f"unexpected {unexpected[:4]})")
    if check:
        diff, scale = max_abs_diff_vs_onnxruntime(path, model)
        if diff > CHECK_TOLERANCE * max(1.0, scale):
            raise BadInputError(f"{path}: the converted IResNet differs from onnxruntime (max |diff| {diff:.2e} for "
                                f"outputs up to {scale:.2f}); the file's layout is not the arcface_torch IResNet "
                                "this converter expects. Use the onnxruntime backend for it.")
        log.info("converted %s to IResNet %s (max |torch - onnxruntime| = %.1e)", path, cfg.layers, diff)
    return model


def max_abs_diff_vs_onnxruntime(path: str | Path, model: Any, *, n: int = 2, seed: int = 0) -> tuple[float, float]:
    """(max |model(x) - onnxruntime(x)|, max |onnxruntime(x)|) on ``n`` random [-1, 1] crops, fp32 on CPU.

    The model is evaluated on a CPU fp32 copy, so the check says nothing about the device it will run on.
    """
    import copy

    import onnxruntime as ort
    import torch

    cfg = model.config
    x = np.random.default_rng(seed).uniform(-1, 1, (n, 3, cfg.input_size, cfg.input_size)).astype(np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    fixed = inp.shape[0] if isinstance(inp.shape[0], int) else None
    parts = [x[i:i + 1] for i in range(n)] if fixed == 1 else [x]
    ref = np.concatenate([sess.run(None, {inp.name: p})[0] for p in parts])
    p0 = next(model.parameters())
    cpu = model if (p0.device.type == "cpu" and p0.dtype == torch.float32) else copy.deepcopy(model).to("cpu", torch.float32)
    cpu.eval()
    with torch.inference_mode():
        got = cpu(torch.from_numpy(x)).numpy()
    return float(np.abs(got - ref).max()), float(np.abs(ref).max())
