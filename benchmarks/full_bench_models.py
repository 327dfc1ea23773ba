"""The paper profile's real architectures with random weights, for ``bench_full_bench.py``.

Timing does not depend on weight values, but detectors with random weights find no faces (or thousands), so
each real detector network is wrapped in :class:`OracleFaces`: the network runs on every image exactly as in a
real run (its cost is measured), and the faces returned are the ones the bench placed in the image (boxes and
landmarks MTCNN found on the shipped photo, moved to where the bench pasted them). Everything after detection
(alignment, the three face models, CLIP, SigLIP, metrics, rows) then does the work a real run does.

* SCRFD-10GF: the layout of insightface's ``scrfd_10g_bnkps`` config (ResNet-V1e deep stem, BasicBlocks 3-4-2-3
  with 56/88/88/224 channels, PAFPN 56, per-stride heads of three 80-channel 3x3 convs, 2 anchors, 5 keypoints),
  exported to ONNX with det_10g.onnx's nine outputs and run by insightface through ``SCRFDDetector``;
  its FLOPs at 640x640 are printed by the bench so the stand-in can be checked against the 10 GF it claims.
* RetinaFace-R50: facexlib's network, classification head zeroed (no box passes 0.97), at native resolution.
* ArcFace: a random IResNet-50 (w600k_r50 layout) exported to ONNX, converted back by the project's converter
  (``faces/onnx_iresnet.py``) and run as :class:`ArcFaceTorch`; AdaFace IR-50; FaceNet InceptionResnetV1.
* CLIP ViT-B/16 (open_clip) and SigLIP so400m-patch14-384 + the v2.5 head, through the real scorer classes.
"""
from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def fingerprint(image: np.ndarray) -> str:
    """Cheap content key of a decoded image (shape + every 16th pixel)."""
    return f"{image.shape}-" + hashlib.sha1(np.ascontiguousarray(image[::16, ::16]).tobytes()).hexdigest()


class OracleFaces:
    """Runs a real detector network on each image, returns the faces registered for that image's pixels."""

    def __init__(self, inner: Any, known: dict[str, list[Any]]) -> None:
        self.inner, self.known = inner, known
        self.id, self.config = inner.id, dict(inner.config)
        self.runs_on = getattr(inner, "runs_on", "?")

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Any]]:
        self.inner.detect(list(images))  # the real network's cost
        return [list(self.known.get(fingerprint(im), [])) for im in images]


def scrfd_10g_torch() -> Any:
    import torch
    from torch import nn

    def cbr(cin: int, cout: int, stride: int = 1, k: int = 3, relu: bool = True) -> nn.Sequential:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]
        return nn.Sequential(*layers, nn.ReLU(inplace=True)) if relu else nn.Sequential(*layers)

    class Basic(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.a, self.b = cbr(cin, cout, stride), cbr(cout, cout, relu=False)
            self.down = None
            if stride != 1 or cin != cout:  # ResNet-V1e: average-pool then 1x1 conv on the shortcut
                self.down = nn.Sequential(nn.AvgPool2d(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity(),
                                          cbr(cin, cout, 1, k=1, relu=False))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.b(self.a(x)) + (self.down(x) if self.down is not None else x))

    class SCRFD10G(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(cbr(3, 28, 2), cbr(28, 28), cbr(28, 56), nn.MaxPool2d(3, 2, 1))
            planes, blocks, cin = (56, 88, 88, 224), (3, 4, 2, 3), 56
            self.stages = nn.ModuleList()
            for i, (p, n) in enumerate(zip(planes, blocks)):
                self.stages.append(nn.Sequential(Basic(cin, p, 1 if i == 0 else 2), *[Basic(p, p, 1) for _ in range(n - 1)]))
                cin = p
            self.lateral = nn.ModuleList([nn.Conv2d(c, 56, 1) for c in planes[1:]])
            self.fpn = nn.ModuleList([nn.Conv2d(56, 56, 3, 1, 1) for _ in range(3)])
            self.down = nn.ModuleList([nn.Conv2d(56, 56, 3, 2, 1) for _ in range(2)])
            self.pafpn = nn.ModuleList([nn.Conv2d(56, 56, 3, 1, 1) for _ in range(2)])
            self.towers = nn.ModuleList([nn.Sequential(cbr(56, 80), cbr(80, 80), cbr(80, 80)) for _ in range(3)])
            self.cls = nn.ModuleList([nn.Conv2d(80, 2, 3, 1, 1) for _ in range(3)])
            self.reg = nn.ModuleList([nn.Conv2d(80, 8, 3, 1, 1) for _ in range(3)])
            self.kps = nn.ModuleList([nn.Conv2d(80, 20, 3, 1, 1) for _ in range(3)])
            for c in self.cls:  # quiet: sigmoid(-12) everywhere, no box passes any threshold
                nn.init.zeros_(c.weight)
                nn.init.constant_(c.bias, -12.0)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            feats = []
            x = self.stem(x)
            for s in self.stages:
                x = s(x)
                feats.append(x)
            lat = [conv(f) for conv, f in zip(self.lateral, feats[1:])]
            for i in (2, 1):  # top-down
                lat[i - 1] = lat[i - 1] + nn.functional.interpolate(lat[i], size=lat[i - 1].shape[-2:], mode="nearest")
            outs = [conv(v) for conv, v in zip(self.fpn, lat)]
            for i in range(2):  # bottom-up (PAFPN)
                outs[i + 1] = outs[i + 1] + self.down[i](outs[i])
            outs = [outs[0]] + [conv(o) for conv, o in zip(self.pafpn, outs[1:])]
            scores, boxes, kps = [], [], []
            for i, o in enumerate(outs):
                t = self.towers[i](o)
                scores.append(torch.sigmoid(self.cls[i](t)).permute(0, 2, 3, 1).reshape(-1, 1))
                boxes.append(self.reg[i](t).permute(0, 2, 3, 1).reshape(-1, 4))
                kps.append(self.kps[i](t).permute(0, 2, 3, 1).reshape(-1, 10))
            return (*scores, *boxes, *kps)

    torch.manual_seed(0)
    return SCRFD10G().eval()


def export_scrfd(path: Path) -> float:
    """Write the SCRFD-10GF stand-in as ONNX (det_10g.onnx's input and nine outputs); returns GFLOPs at 640."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    net = scrfd_10g_torch()
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        net(torch.zeros(1, 3, 640, 640))
    names = [f"{k}_{s}" for k in ("score", "bbox", "kps") for s in (8, 16, 32)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.zeros(1, 3, 640, 640), str(path), input_names=["input.1"], output_names=names,
                          dynamic_axes={"input.1": {2: "h", 3: "w"}, **{n: {0: "n"} for n in names}}, dynamo=False,
                          opset_version=13)
    return fc.get_total_flops() / 1e9


def retinaface_random(path: Path) -> None:
    import torch
    from facexlib.detection.retinaface import RetinaFace

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        torch.manual_seed(0)
        net = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
    for prm in net.ClassHead.parameters():  # softmax 0.5: nothing passes 0.97, the time is network + decoding
        prm.data.zero_()
    torch.save(net.state_dict(), path)


def arcface_r50_onnx(path: Path) -> None:
    import torch

    from multiid_bench.faces.iresnet import IRESNET50, build_iresnet

    torch.manual_seed(0)
    net = build_iresnet(IRESNET50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.randn(1, 3, 112, 112), str(path), input_names=["input.1"], output_names=["embedding"],
                          dynamic_axes={"input.1": {0: "n"}, "embedding": {0: "n"}}, dynamo=False, opset_version=11)


def face_backends(tmp: Path, device: str, known: dict[str, list[Any]], batch_size: int) -> tuple[list[Any], dict[str, Any]]:
    """The paper profile's three backends (arcface/SCRFD, adaface + facenet/RetinaFace) with random weights."""
    import torch
    from facenet_pytorch import InceptionResnetV1

    from multiid_bench.faces.detect import DETECTORS, RetinaFaceDetector, SCRFDDetector
    from multiid_bench.faces.iresnet import ir_backbone
    from multiid_bench.faces.models import FACE_MODELS, ArcFaceTorch, _bgr_01, _bgr_pm1, _TorchModel
    from multiid_bench.runner.extract import FaceBackend

    info: dict[str, Any] = {}
    info["scrfd_gflops_640"] = round(export_scrfd(tmp / "det_10g.onnx"), 2)
    scrfd = OracleFaces(SCRFDDetector("scrfd", str(tmp / "det_10g.onnx"), device=device,
                                      config=dict(DETECTORS["scrfd"].defaults)), known)
    retinaface_random(tmp / "retinaface.pth")
    retina = OracleFaces(RetinaFaceDetector(str(tmp / "retinaface.pth"), device=device,
                                            config=dict(DETECTORS["retinaface"].defaults)), known)
    arcface_r50_onnx(tmp / "w600k_r50.onnx")
    arc = ArcFaceTorch("arcface", FACE_MODELS["arcface"], tmp / "w600k_r50.onnx", "random-r50", device=device,
                       batch_size=batch_size)
    torch.manual_seed(1)
    ada = _TorchModel("adaface", FACE_MODELS["adaface"], "random-ir50", ir_backbone("ir_50"), _bgr_pm1, device=device,
                      batch_size=batch_size)
    torch.manual_seed(2)
    fn = _TorchModel("facenet", FACE_MODELS["facenet"], "random-vggface2", InceptionResnetV1(pretrained=None), _bgr_01,
                     device=device, batch_size=batch_size)
    backends = [FaceBackend("arcface", scrfd, arc, "arcface", "top_face"),
                FaceBackend("adaface", retina, ada, "ffhq112", "top_face_drop_missing"),
                FaceBackend("facenet", retina, fn, "ffhq112", "top_face_drop_missing")]
    info["runs_on"] = {"scrfd": scrfd.runs_on, "retinaface": retina.runs_on, "arcface": arc.runs_on,
                       "adaface": ada.runs_on, "facenet": fn.runs_on}
    return backends, info


def image_scorers(device: str, clip_dtype: str, aesthetic_dtype: str, batch_size: int) -> dict[str, Any]:
    """CLIP ViT-B/16 (QuickGELU) and SigLIP so400m + v2.5 head, real classes, random weights (no files)."""
    from multiid_bench.scorers.aesthetic import AestheticScorer
    from multiid_bench.scorers.base import ScorerCard
    from multiid_bench.scorers.clip import ClipScorer

    class RandomClip(ClipScorer):
        @property
        def weight_ids(self) -> tuple[str, ...]:
            return ()

        def _resolve(self) -> ScorerCard:
            return ScorerCard("clip", "bench", ("clip_i", "clip_t"), "open_clip:ViT-B-16 random", (("random", "0"),),
                              "CLIPProcessor (PIL)", "clip-reference-224-v1", self.dtype, 512)

        def _build(self, device: str) -> None:
            import open_clip
            import torch

            torch.manual_seed(3)
            model = open_clip.create_model("ViT-B-16", pretrained=None, force_quick_gelu=True, device=device)
            self._model = model.eval() if self.dtype == "float32" else model.to(self._torch_dtype()).eval()
            self._tokenizer = open_clip.get_tokenizer("ViT-B-16", context_length=77)

    class RandomAesthetic(AestheticScorer):
        @property
        def weight_ids(self) -> tuple[str, ...]:
            return ()

        def _resolve(self) -> ScorerCard:
            return ScorerCard("aesthetic", "bench", ("aesthetic",), "SigLIP so400m/14@384 random + v2.5 head",
                              (("random", "0"),), "SiglipImageProcessor (PIL)", "siglip-pil-384-v1", self.dtype, 1152)

        def _build(self, device: str) -> None:
            import torch
            from transformers import SiglipVisionConfig, SiglipVisionModel

            from multiid_bench.scorers._aesthetic_model import AestheticHead

            cfg = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                                     num_attention_heads=16, image_size=384, patch_size=14)
            torch.manual_seed(4)
            dt = self._torch_dtype()
            self._vision = SiglipVisionModel(cfg).eval().to(device=device, dtype=dt)
            self._head = AestheticHead(1152).eval().to(device=device, dtype=dt)

    clip = RandomClip(checkpoint="random", dtype=clip_dtype, batch_size=batch_size)  # type: ignore[arg-type]
    aes = RandomAesthetic(dtype=aesthetic_dtype, batch_size=min(batch_size, 16))  # type: ignore[arg-type]
    return {"clip": clip, "aesthetic": aes}

