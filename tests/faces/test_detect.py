"""Detectors: real MTCNN on a real photo; SCRFD and RetinaFace loaders on test-made weights in the real
formats (an SCRFD-layout ONNX, a facexlib RetinaFace-R50 state dict), fetched and checksummed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from multiid_bench.errors import BadInputError, ConfigError, MissingWeightsError
from multiid_bench.faces import Detector, Face, load_detector


def test_mtcnn_finds_the_six_people_of_t1_and_rejects_false_positives(mtcnn, t1, t1_faces) -> None:
    assert isinstance(mtcnn, Detector) and mtcnn.config["min_score"] == 0.9
    assert len(t1_faces) == 6
    scores = [f.score for f in t1_faces]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.9
    for f in t1_faces:
        (x1, y1, x2, y2), lm = f.box, f.landmarks_array()
        assert (lm[:, 0] > x1).all() and (lm[:, 0] < x2).all() and (lm[:, 1] > y1).all() and (lm[:, 1] < y2).all()
        assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # image-left eye / mouth corner first
        assert f.eye_distance > 15
    # the same network with no final-score floor also returns MTCNN's low-score background blobs
    loose = load_detector("mtcnn", offline=True, min_score=0.0).detect([t1])[0]
    extra = [f for f in loose if not any(np.allclose(f.box, g.box) for g in t1_faces)]
    assert len(loose) > 6 and len(extra) == len(loose) - 6
    assert all(f.score < 0.9 for f in extra)


def test_mtcnn_batches_mixed_images(mtcnn, t1, t1_faces) -> None:
    flipped = np.ascontiguousarray(t1[:, ::-1])
    blank = np.full((240, 320, 3), 128, np.uint8)
    res = mtcnn.detect([t1, blank, flipped])
    assert [len(r) for r in res] == [6, 0, 6]  # "no face" is an explicit empty list
    np.testing.assert_allclose([f.box for f in res[0]], [f.box for f in t1_faces], atol=1e-3)
    w = t1.shape[1]
    mirrored = sorted(w - (f.box[0] + f.box[2]) / 2 for f in res[2])
    assert np.allclose(mirrored, sorted((f.box[0] + f.box[2]) / 2 for f in t1_faces), atol=8)
    with pytest.raises(BadInputError, match="wrap a single image"):
        mtcnn.detect(t1)
    with pytest.raises(BadInputError, match=r"image #0: expected \(H, W, 3\) uint8"):
        mtcnn.detect([t1[..., 0]])


def test_tiny_images_have_no_face_instead_of_crashing_mtcnn(mtcnn, t1, t1_faces) -> None:
    from facenet_pytorch import MTCNN

    from multiid_bench.faces.detect import TOO_SMALL_REASON, too_small

    assert TOO_SMALL_REASON == "image too small for the detector"
    raw = MTCNN(keep_all=True, post_process=False, min_face_size=20)
    shapes = [(1, 1), (2, 2), (19, 19), (19, 400), (20, 20), (20, 400), (1, 100)]
    crashes = []
    for hw in shapes:  # the floor is exactly where facenet-pytorch itself starts to raise
        try:
            raw.detect(np.full((1, *hw, 3), 128, np.uint8))
            crashes.append(False)
        except ValueError:
            crashes.append(True)
    assert crashes == [True, True, True, True, False, False, True]
    assert [too_small(mtcnn, hw) for hw in shapes] == crashes
    tiny = [np.full((*hw, 3), 128, np.uint8) for hw in shapes]
    res = mtcnn.detect([tiny[0], t1, tiny[1], tiny[4]])
    assert [len(r) for r in res] == [0, 6, 0, 0]
    np.testing.assert_allclose([f.box for f in res[1]], [f.box for f in t1_faces], atol=1e-3)
    assert too_small(object(), (1, 1)) is False  # detectors without a floor run on anything


def test_face_roundtrip_and_validation() -> None:
    f = Face(box=(1, 2, 30, 40), score=0.9, landmarks=((5, 6), (20, 6), (12, 15), (7, 25), (19, 25)))
    assert Face.from_dict(f.to_dict()) == f
    with pytest.raises(BadInputError, match="5"):
        Face(box=(0, 0, 1, 1), score=1.0, landmarks=((0, 0),))
    with pytest.raises(BadInputError, match="non-finite"):
        Face(box=(0, 0, float("nan"), 1), score=1.0, landmarks=((0, 0),) * 5)


# ---- SCRFD on an ONNX with SCRFD's output layout -----------------------------------------------------
_KPS = np.array([[-0.5, -0.5], [0.5, -0.5], [0.0, 0.0], [-0.4, 0.6], [0.4, 0.6]], np.float32)


def _scrfd_onnx(path: Path) -> None:
    """3 strides x (score, bbox, kps), 2 anchors, batched outputs: SCRFD-10G's layout. It 'sees' a face
    wherever the input is red (R - G high), boxes span +-2 strides, landmarks sit at fixed offsets."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, outs = [], [], {"score": [], "bbox": [], "kps": []}
    for s in (8, 16, 32):
        nodes.append(helper.make_node("AveragePool", ["input.1"], [f"p{s}"], kernel_shape=[s, s], strides=[s, s]))
        heads = {
            "score": (np.tile(np.array([[10.0, -10.0, 0.0]], np.float32), (2, 1)), np.full(2, -10.0, np.float32), 1),
            "bbox": (np.zeros((8, 3), np.float32), np.full(8, 2.0, np.float32), 4),
            "kps": (np.zeros((20, 3), np.float32), np.tile(_KPS.reshape(-1), 2), 10),
        }
        for kind, (w, b, width) in heads.items():
            inits += [numpy_helper.from_array(w.reshape(len(w), 3, 1, 1), f"w_{kind}{s}"),
                      numpy_helper.from_array(b, f"b_{kind}{s}")]
            nodes.append(helper.make_node("Conv", [f"p{s}", f"w_{kind}{s}", f"b_{kind}{s}"], [f"c_{kind}{s}"]))
            src = f"c_{kind}{s}"
            if kind == "score":
                nodes.append(helper.make_node("Sigmoid", [src], [f"sg{s}"]))
                src = f"sg{s}"
            inits.append(numpy_helper.from_array(np.array([1, -1, width], np.int64), f"shape_{kind}{s}"))
            nodes += [helper.make_node("Transpose", [src], [f"t_{kind}{s}"], perm=[0, 2, 3, 1]),
                      helper.make_node("Reshape", [f"t_{kind}{s}", f"shape_{kind}{s}"], [f"{kind}_{s}"])]
            outs[kind].append(helper.make_tensor_value_info(f"{kind}_{s}", TensorProto.FLOAT, [1, "n", width]))
    graph = helper.make_graph(nodes, "tiny_scrfd",
                              [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "h", "w"])],
                              outs["score"] + outs["bbox"] + outs["kps"], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_scrfd_loader_colour_order_and_coordinates(fake_hub, tmp_path: Path) -> None:
    _scrfd_onnx(tmp_path / "det_10g.onnx")
    fake_hub.publish("insightface-buffalo-l", "det_10g.onnx", tmp_path / "det_10g.onnx")
    det = load_detector("scrfd", cache_dir=fake_hub.cache)
    assert det.config == {"threshold": 0.45, "det_size": 640, "nms": 0.4}
    img = np.full((960, 1280, 3), 128, np.uint8)
    img[352:448, 752:848] = (255, 0, 0)  # a red 96 px square centred at (800, 400)
    blue = img.copy()
    blue[352:448, 752:848] = (0, 0, 255)
    faces, none = det.detect([img, blue])
    assert none == []  # reading the image as BGR would have made the blue square the red one
    assert faces and [f.score for f in faces] == sorted((f.score for f in faces), reverse=True)
    assert all(f.score >= 0.45 for f in faces) and faces[0].score > 0.99
    for f in faces:  # every detection comes from an anchor on the square, mapped back to full resolution
        cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
        assert abs(cx - 800) <= 64 and abs(cy - 400) <= 64
        nose = f.landmarks_array()[2]
        np.testing.assert_allclose(nose, (cx, cy), atol=1e-3)  # kps offset 0 at the anchor centre


# ---- RetinaFace-R50 (facexlib) on a state dict in the published layout ---------------------------
def test_retinaface_loader_on_facexlib_state_dict(fake_hub, tmp_path: Path) -> None:
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    net = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
    state = {f"module.{k}": v for k, v in net.state_dict().items()}  # as published (DataParallel keys)
    torch.save(state, tmp_path / "detection_Resnet50_Final.pth")
    fake_hub.publish("retinaface-r50-facexlib", "detection_Resnet50_Final.pth", tmp_path / "detection_Resnet50_Final.pth")
    det = load_detector("retinaface", cache_dir=fake_hub.cache, threshold=0.3)
    assert det.config["threshold"] == 0.3 and det.config["max_side"] is None
    img = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    faces = det.detect([img])[0]
    with torch.inference_mode():
        ref = net.detect_faces(np.ascontiguousarray(img[..., ::-1]).astype(np.float32), conf_threshold=0.3)
    assert len(faces) == len(ref) > 0
    np.testing.assert_allclose(sorted(f.score for f in faces), sorted(ref[:, 4]), atol=1e-5)
    assert all(f.score > 0.3 for f in faces)
    det.config["threshold"] = float(ref[:, 4].max())  # config is read at detect time
    assert det.detect([img])[0] == []  # "> threshold", strictly, like the official helper


def test_detector_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean: scrfd"):
        load_detector("scrfdd")
    with pytest.raises(ConfigError, match="has no option"):
        load_detector("mtcnn", offline=True, det_size=640)
    with pytest.raises(MissingWeightsError, match="mbench weights download retinaface-r50-facexlib"):
        load_detector("retinaface", cache_dir=tmp_path, offline=True)


def test_score_records_tiny_generated_image_as_no_face(tmp_path: Path) -> None:
    """`mbench score` on a 1x1 generated image: a face failure with the reason, not "unreadable"."""
    import json

    from click.testing import CliRunner
    from PIL import Image

    from multiid_bench.cli.main import cli

    images = tmp_path / "imgs"
    images.mkdir()
    Image.new("RGB", (1, 1), (128, 128, 128)).save(images / "p1_astronaut.png")
    res = CliRunner().invoke(cli, ["score", "--images", str(images), "--layout", "flat", "--name", "tiny",
                                   "--bench", "demo", "--subset", "p1", "--limit", "1", "--profile", "offline",
                                   "--protocol", "strict", "--no-scorers", "--offline", "--device", "cpu",
                                   "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")])
    assert res.exit_code == 4, res.output  # a failed case, reported, no traceback
    rows = [json.loads(line) for f in (tmp_path / "out").glob("cases*.jsonl") for line in f.read_text().splitlines()]
    assert [(r["case_id"], r["status"], r["reason"]) for r in rows] == [
        ("p1_astronaut", "failed", "no face in generated image (image too small for the detector)")]


def test_adaface_and_facenet_turn_tf32_off_around_their_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    """The official run had them in fp32 on the CPU; on a GPU TF32 would move embeddings (no GPU here: the
    switch is exercised with its flags, the numeric effect is measured by benchmarks/parity_official.py)."""
    from multiid_bench.faces import models

    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32))
            return x.flatten(1)[:, :4]

    spec = models.FACE_MODELS["facenet"]
    m = models._TorchModel("facenet", spec, "0" * 64, Probe(), lambda b: b.astype(np.float32), device="cpu",
                           batch_size=4)
    assert m.exact_fp32 and not models._TorchModel("arcface", spec, "0" * 64, Probe(), lambda b: b,
                                                   device="cpu", batch_size=4).exact_fp32
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        with models._no_tf32(True):
            assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (False, False)
        assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (True, True)  # restored
        m.embed(np.zeros((2, 160, 160, 3), np.uint8))
        assert seen == [(True, True)]  # CPU tensors: nothing to switch
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
