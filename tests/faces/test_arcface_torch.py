"""ArcFace on torch: insightface recognition ONNX graphs converted to the IResNet, against onnxruntime.

Stand-in weights with the real graph structure: the same IResNet-50 / IResNet-100 depth (3-4-14-3 and
3-13-30-3 blocks), exported by ``torch.onnx.export`` in eval mode so the exporter folds each Conv+BN pair
exactly as in insightface's w600k_r50.onnx / glintr100.onnx; widths are narrow so the test stays fast.
onnxruntime running the same file is the independent oracle.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from multiid_bench.errors import BadInputError
from multiid_bench.faces import load_face_model
from multiid_bench.faces.iresnet import IResNetConfig, build_iresnet
from multiid_bench.faces.models import ArcFaceONNX, ArcFaceTorch
from multiid_bench.faces.onnx_iresnet import NotAnIResNetGraph, iresnet_from_onnx, max_abs_diff_vs_onnxruntime
from multiid_bench.faces.placement import runtime_table
from multiid_bench.faces.runtime import resolve_face_backend
from tests.iresnet_stand_in import random_bn_iresnet

R50 = (3, 4, 14, 3)
R100 = (3, 13, 30, 3)


def _stand_in(layers: tuple[int, int, int, int], seed: int = 0) -> torch.nn.Module:
    return random_bn_iresnet(layers, (8, 8, 16, 16), 32, seed)


def _export(net: torch.nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.randn(1, 3, 112, 112), str(path), dynamo=False, opset_version=11,
                          input_names=["input.1"], output_names=["embedding"],
                          dynamic_axes={"input.1": {0: "None"}, "embedding": {0: "None"}})
    return path


def _crops(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)


@pytest.mark.parametrize(("model_id", "weight_id", "filename", "layers"), [
    ("arcface", "insightface-buffalo-l", "w600k_r50.onnx", R50),
    ("arcface-glintr100", "insightface-antelopev2", "glintr100.onnx", R100),
])
def test_arcface_torch_equals_onnxruntime_on_the_same_file(fake_hub, tmp_path: Path, model_id, weight_id, filename,
                                                           layers) -> None:
    import onnx

    net = _stand_in(layers)
    src = _export(net, tmp_path / filename)
    graph = onnx.load(str(src)).graph
    ops = [n.op_type for n in graph.node]
    n_blocks = sum(layers)
    # the real graph's structure: BN folded into every conv, stand-alone BN = one per block + bn2 + features
    assert ops.count("Conv") == 1 + 2 * n_blocks + 4 and ops.count("PRelu") == 1 + n_blocks
    assert ops.count("BatchNormalization") == n_blocks + 2 and ops.count("Gemm") == 1
    fake_hub.publish(weight_id, filename, src)
    t = load_face_model(model_id, cache_dir=fake_hub.cache, batch_size=3, backend="torch")
    o = load_face_model(model_id, cache_dir=fake_hub.cache, batch_size=3, backend="onnxruntime")
    assert isinstance(t, ArcFaceTorch) and isinstance(o, ArcFaceONNX)
    assert t.module.config.layers == layers
    crops = _crops(7)
    et, eo = t.embed(crops), o.embed(crops)
    assert et.shape == (7, 32) and et.dtype == np.float32
    assert np.abs(eo).max() > 0.5  # a real signal, not zeros
    assert float(np.abs(et - eo).max()) < 1e-4
    assert t.forward_passes == 3  # 7 crops in batches of 3
    # the torch path is the source network (input RGB (x - 127.5) / 127.5)
    x = torch.from_numpy(((crops.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2).copy())
    with torch.inference_mode():
        np.testing.assert_allclose(et, net(x).numpy(), atol=1e-4, rtol=0)
    assert t.card.version == "1+torch" and o.card.version == "1"
    assert t.runs_on.startswith("torch on cpu") and o.runs_on == "onnxruntime CPUExecutionProvider"


def test_converter_check_and_refusals(tmp_path: Path) -> None:
    net = _stand_in((1, 1, 2, 1), seed=3)
    path = _export(net, tmp_path / "g.onnx")
    conv = iresnet_from_onnx(path)
    diff, scale = max_abs_diff_vs_onnxruntime(path, conv, n=3)
    assert diff < 1e-4 and scale > 0.5
    # a wrong mapping is caught by the onnxruntime comparison: swap two PReLU slopes
    with torch.no_grad():
        conv.layer3[0].prelu.weight.mul_(-3.0)
    diff_bad, _ = max_abs_diff_vs_onnxruntime(path, conv, n=3)
    assert diff_bad > 1e-2
    # mxnet-style graphs that normalise their input are not IResNet exports
    from tests.faces.test_models import _recogniser_onnx

    rng = np.random.default_rng(1)
    _recogniser_onnx(tmp_path / "tiny.onnx", rng.normal(size=(3, 512)), rng.normal(size=512), baked_norm=True)
    with pytest.raises(NotAnIResNetGraph, match="normalises its input"):
        iresnet_from_onnx(tmp_path / "tiny.onnx")
    _recogniser_onnx(tmp_path / "gap.onnx", rng.normal(size=(3, 512)), rng.normal(size=512))
    with pytest.raises(NotAnIResNetGraph, match="not an IResNet"):
        iresnet_from_onnx(tmp_path / "gap.onnx")
    assert issubclass(NotAnIResNetGraph, BadInputError)


def test_auto_backend_falls_back_to_onnxruntime_and_torch_refuses(fake_hub, tmp_path: Path, monkeypatch) -> None:
    from tests.faces.test_models import _recogniser_onnx

    rng = np.random.default_rng(2)
    _recogniser_onnx(tmp_path / "w600k_r50.onnx", rng.normal(size=(3, 512)), rng.normal(size=512))
    fake_hub.publish("insightface-buffalo-l", "w600k_r50.onnx", tmp_path / "w600k_r50.onnx")
    monkeypatch.delenv("MBENCH_FACE_BACKEND", raising=False)
    assert isinstance(load_face_model("arcface", cache_dir=fake_hub.cache), ArcFaceONNX)  # auto
    with pytest.raises(NotAnIResNetGraph):
        load_face_model("arcface", cache_dir=fake_hub.cache, backend="torch")
    monkeypatch.setenv("MBENCH_FACE_BACKEND", "torch")
    with pytest.raises(NotAnIResNetGraph):
        load_face_model("arcface", cache_dir=fake_hub.cache)
    monkeypatch.setenv("MBENCH_FACE_BACKEND", "tensorrt")
    with pytest.raises(Exception, match="face backend must be one of"):
        resolve_face_backend(None)


def test_runtime_table_names_every_model_and_detector(monkeypatch) -> None:
    monkeypatch.delenv("MBENCH_FACE_BACKEND", raising=False)
    table = runtime_table("cpu")
    assert table["arcface"].startswith("torch on cpu (converted from ONNX")
    assert table["adaface"] == "torch on cpu" and table["retinaface"] == "torch on cpu"
    assert table["scrfd"] == "onnxruntime on CPU" and table["dlib"].startswith("dlib on")
    assert runtime_table("cpu", backend="onnxruntime")["arcface-glintr100"] == "onnxruntime on CPU"
    if not torch.cuda.is_available():
        assert "CUDA is not available" in runtime_table("cuda")["facenet"]
        assert "onnxruntime-gpu" in runtime_table("cuda")["scrfd"]


def test_untrained_statistics_shared_through_identity_nodes_convert(tmp_path: Path) -> None:
    """torch.onnx.export shares equal tensors (fresh BN: ones/zeros) through Identity nodes; they must resolve."""
    import onnx

    torch.manual_seed(4)
    net = build_iresnet(IResNetConfig((1, 1, 2, 1), (8, 8, 16, 16), 32))  # BN statistics as initialised
    path = _export(net, tmp_path / "fresh.onnx")
    assert "Identity" in {n.op_type for n in onnx.load(str(path)).graph.node}
    conv = iresnet_from_onnx(path)
    diff, scale = max_abs_diff_vs_onnxruntime(path, conv, n=2)
    assert diff < 1e-5 and scale > 0.01


def test_doctor_reports_where_each_model_runs(tmp_path: Path, monkeypatch) -> None:
    from multiid_bench.weights.doctor import run_checks

    monkeypatch.delenv("MBENCH_FACE_BACKEND", raising=False)
    report = run_checks(str(tmp_path), [], "offline")
    dev = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert report["runs_on"]["arcface"].startswith(f"torch on {dev}")
    assert report["runs_on"]["scrfd"].startswith("onnxruntime") and set(report["runs_on"]) >= {"adaface", "mtcnn"}
