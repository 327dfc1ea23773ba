"""Face-model loaders on weights the tests create in the real formats, served and checksummed like the
real ones: an insightface-layout ONNX recogniser, an AdaFace Lightning checkpoint, a FaceNet state dict."""
from __future__ import annotations

import collections
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from multiid_bench.errors import BadInputError, ConfigError, MissingWeightsError
from multiid_bench.faces import FaceModel, load_face_model


def _recogniser_onnx(path: Path, w: np.ndarray, b: np.ndarray, *, baked_norm: bool = False) -> None:
    """(N, 3, 112, 112) 'input.1' -> (N, 512) '683': global average pool then a linear layer.

    With ``baked_norm`` the graph starts with Sub/Mul nodes, as the mxnet-converted insightface packs do.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, src = [], [numpy_helper.from_array(w.astype(np.float32), "W"),
                             numpy_helper.from_array(b.astype(np.float32), "B")], "input.1"
    if baked_norm:
        inits += [numpy_helper.from_array(np.array(127.5, np.float32), "mean"),
                  numpy_helper.from_array(np.array(1 / 127.5, np.float32), "scale")]
        nodes += [helper.make_node("Sub", ["input.1", "mean"], ["centred"], name="Sub_0"),
                  helper.make_node("Mul", ["centred", "scale"], ["normed"], name="Mul_1")]
        src = "normed"
    nodes += [helper.make_node("GlobalAveragePool", [src], ["pooled"], name="gap"),
              helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
              helper.make_node("Gemm", ["flat", "W", "B"], ["683"], name="fc")]
    graph = helper.make_graph(
        nodes, "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", 512])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _crops(n: int, size: int = 112, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("baked", [False, True])
def test_arcface_onnx_loader_convention_and_batching(fake_hub, tmp_path: Path, baked: bool) -> None:
    rng = np.random.default_rng(1)
    w, b = rng.normal(size=(3, 512)), rng.normal(size=512)
    _recogniser_onnx(tmp_path / "w600k_r50.onnx", w, b, baked_norm=baked)
    fake_hub.publish("insightface-buffalo-l", "w600k_r50.onnx", tmp_path / "w600k_r50.onnx")
    model = load_face_model("arcface", cache_dir=fake_hub.cache, batch_size=4)
    assert isinstance(model, FaceModel)
    crops = _crops(10)
    emb = model.embed(crops)
    # the contract: RGB, (x - 127.5) / 127.5, channel means -> linear layer
    expected = ((crops.astype(np.float64) - 127.5) / 127.5).mean(axis=(1, 2)) @ w + b
    assert emb.shape == (10, 512) and emb.dtype == np.float32
    np.testing.assert_allclose(emb, expected, rtol=1e-4, atol=1e-4)
    assert model.forward_passes == 3  # 10 crops in batches of 4
    np.testing.assert_allclose(model.embed(crops[3:4]), emb[3:4], atol=1e-5)  # batch-size invariant
    bgr_expected = ((crops[..., ::-1] - 127.5) / 127.5).mean(axis=(1, 2)) @ w + b
    assert np.abs(emb - bgr_expected).max() > 1e-2  # the channel order is really tested
    assert model.card.weights_sha256 == fake_hub.manifest_dir.joinpath(
        "insightface-buffalo-l.toml").read_text().split('sha256 = "')[1][:64]
    assert model.card.template == "arcface" and model.card.embedding_dim == 512
    assert model.embed(np.zeros((0, 112, 112, 3), np.uint8)).shape == (0, 512)
    np.testing.assert_allclose(model.embed(_crops(2, 224, seed=3)).shape, (2, 512))  # resized to 112
    with pytest.raises(BadInputError, match="uint8 RGB"):
        model.embed(crops.astype(np.float32))


def _fake_lightning_module() -> type:
    """A dict subclass living in a module that is not importable at load time (like Lightning's AttributeDict)."""
    mod = types.ModuleType("mbench_fake_lightning")
    sys.modules[mod.__name__] = mod

    class AttributeDict(dict):
        pass

    AttributeDict.__module__ = mod.__name__
    AttributeDict.__qualname__ = "AttributeDict"
    mod.AttributeDict = AttributeDict
    return AttributeDict


def test_adaface_lightning_checkpoint(fake_hub, tmp_path: Path) -> None:
    from multiid_bench.faces.iresnet import ir_backbone

    torch.manual_seed(0)
    net = ir_backbone("ir_50").eval()
    for m in net.modules():  # non-trivial BN statistics so the eval-mode path is exercised
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    attr_dict = _fake_lightning_module()
    state = collections.OrderedDict((f"model.{k}", v) for k, v in net.state_dict().items())
    state["head.kernel"] = torch.zeros(512, 3)  # the margin head, dropped like AdaFace's loader does
    ckpt = {"epoch": 24, "state_dict": state, "hyper_parameters": attr_dict(arch="ir_50", m=0.4),
            "pytorch-lightning_version": "1.8.6"}
    torch.save(ckpt, tmp_path / "adaface_ir50_ms1mv2.ckpt")
    del sys.modules["mbench_fake_lightning"]  # the class cannot be imported when we load: stubs only
    fake_hub.publish("adaface-ir50-ms1mv2", "adaface_ir50_ms1mv2.ckpt", tmp_path / "adaface_ir50_ms1mv2.ckpt")

    model = load_face_model("adaface", cache_dir=fake_hub.cache, batch_size=8)
    crops = _crops(3)
    emb = model.embed(crops)
    x = torch.from_numpy(((crops[..., ::-1] / 255.0 - 0.5) / 0.5).astype(np.float32).transpose(0, 3, 1, 2).copy())
    with torch.inference_mode():
        ref, _ = net(x)
    np.testing.assert_allclose(emb, ref.numpy(), atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert model.card.input_convention.startswith("BGR") and model.card.template == "ffhq112"


def test_facenet_state_dict_paper_and_standard_inputs(fake_hub, tmp_path: Path) -> None:
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    net = InceptionResnetV1(classify=True, num_classes=10).eval()  # the real file also carries logits
    torch.save(net.state_dict(), tmp_path / "20180402-114759-vggface2.pt")
    fake_hub.publish("facenet-vggface2", "20180402-114759-vggface2.pt", tmp_path / "20180402-114759-vggface2.pt")
    net.classify = False

    crops = _crops(2)
    paper = load_face_model("facenet", cache_dir=fake_hub.cache)
    x = torch.from_numpy((crops[..., ::-1] / 255.0).astype(np.float32).transpose(0, 3, 1, 2).copy())
    with torch.inference_mode():
        np.testing.assert_allclose(paper.embed(crops), net(x).numpy(), atol=1e-4)
    std = load_face_model("facenet-standard", cache_dir=fake_hub.cache)
    c160 = _crops(2, 160)
    x160 = torch.from_numpy(((c160 - 127.5) / 128.0).astype(np.float32).transpose(0, 3, 1, 2).copy())
    with torch.inference_mode():
        np.testing.assert_allclose(std.embed(c160), net(x160).numpy(), atol=1e-4)
    assert paper.card.crop_size == 112 and std.card.crop_size == 160


def test_corrupted_weights_are_caught_by_checksum(fake_hub, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    _recogniser_onnx(tmp_path / "w600k_r50.onnx", rng.normal(size=(3, 512)), rng.normal(size=512))
    good = (tmp_path / "w600k_r50.onnx").read_bytes()
    (tmp_path / "w600k_r50.onnx").write_bytes(good[:-10] + b"\0" * 10)  # the mirror serves a damaged copy
    import hashlib

    fake_hub.publish("insightface-buffalo-l", "w600k_r50.onnx", tmp_path / "w600k_r50.onnx",
                     sha256=hashlib.sha256(good).hexdigest())
    with pytest.raises(MissingWeightsError, match=r"sha256 .* != expected .*deleted the download"):
        load_face_model("arcface", cache_dir=fake_hub.cache)
    assert not list((fake_hub.cache / "weights" / "insightface-buffalo-l").glob("*.onnx*"))


def test_missing_weights_offline_names_path_and_command(tmp_path: Path) -> None:
    with pytest.raises(MissingWeightsError) as ei:
        load_face_model("adaface", cache_dir=tmp_path, offline=True)
    text = str(ei.value)
    # the store's one missing-weights message (multiid_bench.weights.messages): the file and the fixes
    assert "adaface-ir50-ms1mv2 / adaface_ir50_ms1mv2.ckpt" in text and "mbench weights path" in text
    assert f"mbench weights download adaface-ir50-ms1mv2 --cache-dir {tmp_path}" in text and ei.value.exit_code == 3
    with pytest.raises(ConfigError, match="Did you mean: adaface"):
        load_face_model("adafce")


def test_real_dlib_model_card(dlib_model) -> None:
    assert dlib_model.card.embedding_dim == 128 and dlib_model.card.crop_size == 150
    assert "NOT ArcFace's scale" in dlib_model.card.cosine_scale_note
    assert len(dlib_model.card.weights_sha256) == 64
