"""Face recognisers behind one interface: aligned RGB crops in, (N, D) float32 embeddings out.

| id                  | network (weights id)                          | template | input convention |
|---------------------|-----------------------------------------------|----------|------------------|
| ``arcface``         | IResNet-50 WebFace600K ONNX (insightface-buffalo-l)   | arcface 112 | RGB, (x-127.5)/127.5 |
| ``arcface-glintr100``| ResNet-100 Glint360K ONNX (insightface-antelopev2)   | arcface 112 | RGB, (x-127.5)/127.5 |
| ``adaface``         | IR-50 MS1MV2 Lightning ckpt (adaface-ir50-ms1mv2)      | ffhq112 | BGR, (x/255-0.5)/0.5 |
| ``adaface-ir101``   | IR-101 WebFace12M Lightning ckpt (adaface-ir101-webface12m) | ffhq112 | BGR, (x/255-0.5)/0.5 |
| ``facenet``         | InceptionResnetV1 VGGFace2 (facenet-vggface2), paper input | ffhq112 | BGR, x/255, 112 px |
| ``facenet-standard``| same weights, conventional input                | arcface 160 | RGB, (x-127.5)/128, 160 px |
| ``dlib``            | dlib ResNet (dlib-face-recognition-v1), offline  | dlib 150 | RGB uint8 chip |

The paper-compatible FaceNet input (BGR, [0, 1], 112 px, no standardisation) is what the official
evaluation fed; it is not how FaceNet was trained, and ``facenet-standard`` is offered next to it.
Every model runs in inference mode, in batches, on any torch/onnxruntime device. The ArcFace ONNX graphs
run on torch by default (:class:`ArcFaceTorch`: converted at load time by ``faces/onnx_iresnet.py`` and
checked against onnxruntime on the same file); ``backend="onnxruntime"`` (or ``$MBENCH_FACE_BACKEND``)
keeps the official runtime (see ``faces/runtime.py``). ``model.runs_on`` says where a loaded model runs.
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multiid_bench.errors import BadInputError, ConfigError
from multiid_bench.faces._deps import require
from multiid_bench.faces.runtime import ort_providers, resolve_face_backend, torch_device_label
from multiid_bench.faces.types import FaceModelCard

__all__ = ["FACE_MODELS", "ArcFaceONNX", "ArcFaceTorch", "FaceModelSpec", "face_model_spec", "face_model_weight_ids",
           "load_face_model"]

log = logging.getLogger(__name__)
_COSINE_ARCFACE = "cosine in [-1, 1]; same person typically > 0.3-0.4, strangers ~0 (ArcFace scale)"


@dataclass(frozen=True)
class FaceModelSpec:
    """Static description of a face model id: its weights and how it is fed."""

    weight_id: str
    filename: str
    template: str
    crop_size: int
    input_convention: str
    embedding_dim: int
    cosine_scale_note: str
    version: str = "1"


FACE_MODELS: dict[str, FaceModelSpec] = {
    "arcface": FaceModelSpec("insightface-buffalo-l", "w600k_r50.onnx", "arcface", 112,
                             "RGB (x-127.5)/127.5", 512, _COSINE_ARCFACE),
    "arcface-glintr100": FaceModelSpec("insightface-antelopev2", "glintr100.onnx", "arcface", 112,
                                       "RGB (x-127.5)/127.5", 512, _COSINE_ARCFACE),
    "adaface": FaceModelSpec("adaface-ir50-ms1mv2", "adaface_ir50_ms1mv2.ckpt", "ffhq112", 112,
                             "BGR (x/255-0.5)/0.5", 512, _COSINE_ARCFACE),
    "adaface-ir101": FaceModelSpec("adaface-ir101-webface12m", "adaface_ir101_webface12m.ckpt", "ffhq112", 112,
                                   "BGR (x/255-0.5)/0.5", 512, _COSINE_ARCFACE),
    "facenet": FaceModelSpec("facenet-vggface2", "20180402-114759-vggface2.pt", "ffhq112", 112,
                             "BGR x/255, 112 px (paper-compatible, not FaceNet's training input)", 512,
                             "cosine of L2-normalised features; higher on average than ArcFace for strangers"),
    "facenet-standard": FaceModelSpec("facenet-vggface2", "20180402-114759-vggface2.pt", "arcface", 160,
                                      "RGB (x-127.5)/128, 160 px", 512,
                                      "cosine of L2-normalised features; higher on average than ArcFace for strangers"),
    "dlib": FaceModelSpec("dlib-face-recognition-v1", "dlib_face_recognition_resnet_model_v1.dat", "dlib", 150,
                          "RGB uint8 dlib face chip (150 px, padding 0.25)", 128,
                          "NOT ArcFace's scale: descriptors are not centred, so strangers score high "
                          "(0.81-0.90 between the six people of insightface's t1.jpg) and the same face "
                          ">= 0.98 under flip/jitter/rotation (tests/faces/test_dlib_identity.py); dlib's "
                          "own rule is Euclidean distance < 0.6. Compare dlib numbers only with dlib numbers"),
}


def face_model_weight_ids(model_id: str) -> list[str]:
    """Weight ids ``model_id`` needs (for an offline preflight before anything loads)."""
    spec = _spec(model_id)
    return [spec.weight_id] if spec.weight_id else []  # dlib's shape predictor is in its entry; plug-ins: none


def face_model_spec(model_id: str) -> FaceModelSpec:
    """The spec of a built-in face model or of an installed plug-in (``multiid_bench.faces.plugins``).

    Raises:
        ConfigError: unknown id (with suggestions and the installed plug-ins).
    """
    return _spec(model_id)


def _spec(model_id: str) -> FaceModelSpec:
    if model_id not in FACE_MODELS:
        from multiid_bench.faces.plugins import installed_face_models, plugin_face_model_plugin

        found = plugin_face_model_plugin(model_id)
        if found is not None:  # a plug-in brings no weight files of the toolkit's store
            p, installed = found
            return FaceModelSpec("", "", p.template, p.crop_size, p.input_convention, p.embedding_dim,
                                 p.similarity_scale, f"{p.version} (plugin {installed.identity})")
        import difflib

        known = [*FACE_MODELS, *installed_face_models()]
        close = difflib.get_close_matches(model_id, known, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown face model {model_id!r}.{hint} Available: {', '.join(known)} "
                          f"(plug-ins: entry-point group multiid_bench.face_models, docs/api.md).")
    return FACE_MODELS[model_id]


def _resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    if crops.shape[1] == size:
        return crops
    import cv2

    interp = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(c, (size, size), interpolation=interp) for c in crops])


class _Base(ABC):
    """Validation, batching and the NaN check shared by every model."""

    def __init__(self, model_id: str, spec: FaceModelSpec, weights_sha256: str, batch_size: int) -> None:
        self.id = model_id
        self.spec = spec
        self.batch_size = int(batch_size)
        self.card = FaceModelCard(id=model_id, version=spec.version, weights_sha256=weights_sha256,
                                  template=spec.template, crop_size=spec.crop_size,
                                  input_convention=spec.input_convention, embedding_dim=spec.embedding_dim,
                                  cosine_scale_note=spec.cosine_scale_note)
        self.forward_passes = 0
        self.runs_on = "cpu"

    def embed(self, crops: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 RGB aligned crops -> (N, D) float32 (non-finite rows are logged, not hidden)."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[3] != 3 or crops.shape[1] != crops.shape[2] or crops.dtype != np.uint8:
            raise BadInputError(f"{self.id}.embed expects (N, S, S, 3) uint8 RGB crops, got "
                                f"{crops.shape} {crops.dtype}.")
        if len(crops) == 0:
            return np.zeros((0, self.spec.embedding_dim), dtype=np.float32)
        crops = _resize_crops(crops, self.spec.crop_size)
        out = np.concatenate([self._forward(crops[i:i + self.batch_size])
                              for i in range(0, len(crops), self.batch_size)]).astype(np.float32, copy=False)
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if bad.size:
            log.warning("%s produced non-finite embeddings for crops %s", self.id, bad.tolist())
        return out

    @abstractmethod
    def _forward(self, batch: np.ndarray) -> np.ndarray:
        """Embeddings ``(B, D)`` of one batch of crops already resized to the model's input size."""


def _graph_normalises_input(path: Path) -> bool:
    """mxnet-converted packs bake (x-127.5)*(1/127.5) into the graph; insightface detects it this way."""
    import onnx

    names = [n.name for n in onnx.load(str(path), load_external_data=False).graph.node[:8]]
    return any(n.startswith(("Sub", "_minus")) for n in names) and any(n.startswith(("Mul", "_mul")) for n in names)


class ArcFaceONNX(_Base):
    """insightface recognition ONNX (w600k_r50, glintr100) run with onnxruntime, batched."""

    def __init__(self, model_id: str, spec: FaceModelSpec, path: Path, sha: str, *, device: str, batch_size: int) -> None:
        super().__init__(model_id, spec, sha, batch_size)
        import onnxruntime as ort

        self.mean, self.std = (0.0, 1.0) if _graph_normalises_input(path) else (127.5, 127.5)
        providers, dev_id = ort_providers(device)
        opts = ([{"device_id": dev_id}, {}]) if dev_id >= 0 else None
        self.session = ort.InferenceSession(str(path), providers=providers, provider_options=opts)
        self.runs_on = f"onnxruntime {self.session.get_providers()[0]}" + (f" (device {dev_id})" if dev_id >= 0 else "")
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        if isinstance(inp.shape[2], int) and inp.shape[2] != spec.crop_size:
            raise ConfigError(f"{path} expects {inp.shape[2]} px input, the card says {spec.crop_size}.")

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        x = ((batch.astype(np.float32) - self.mean) / self.std).transpose(0, 3, 1, 2)
        chunks = [x] if not self.fixed_batch else [x[i:i + self.fixed_batch] for i in range(0, len(x), self.fixed_batch)]
        self.forward_passes += len(chunks)
        return np.concatenate([self.session.run(None, {self.input_name: np.ascontiguousarray(c)})[0] for c in chunks])


class _TorchModel(_Base):
    """A torch module fed by ``prepare(batch) -> tensor``; the module returns features (or (feat, norm))."""

    def __init__(self, model_id: str, spec: FaceModelSpec, sha: str, module, prepare: Callable[[np.ndarray], np.ndarray],
                 *, device: str, batch_size: int) -> None:
        super().__init__(model_id, spec, sha, batch_size)
        self.device = device
        self.module = module.to(device).eval()
        self.prepare = prepare

        self.runs_on = f"torch on {torch_device_label(device)}"
        #: The official evaluation ran AdaFace and FaceNet in fp32 on the CPU: on a GPU their convolutions and
        #: matmuls must not use TF32 (10-bit mantissa), or embeddings drift by ~1e-3 from the official numbers.
        self.exact_fp32 = model_id.startswith(("adaface", "facenet"))

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(self.prepare(batch).transpose(0, 3, 1, 2))).to(self.device)
        with torch.inference_mode(), _no_tf32(self.exact_fp32 and x.is_cuda):
            y = self.module(x)
        self.forward_passes += 1
        y = y[0] if isinstance(y, (tuple, list)) else y
        return y.float().cpu().numpy()


@contextlib.contextmanager
def _no_tf32(active: bool) -> Iterator[None]:
    """TF32 off for cuDNN convolutions and CUDA matmuls inside the block (restored after).

    The switches are process-wide: another thread's CUDA work during the block (the overlapped detector)
    also runs without TF32, which only makes it closer to fp32.
    """
    if not active:
        yield
        return
    import torch

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _rgb_pm1(b: np.ndarray) -> np.ndarray:
    return (b.astype(np.float32) - 127.5) / 127.5


class ArcFaceTorch(_TorchModel):
    """An insightface ArcFace ONNX (w600k_r50, glintr100) converted to a torch IResNet, batched on any device.

    Same input convention as :class:`ArcFaceONNX` (RGB, (x-127.5)/127.5); the conversion is checked against
    onnxruntime on the same file at load time. The card's version gains ``+torch``: its embeddings differ
    from onnxruntime's by float rounding (< 1e-4), so the two runtimes never share cache entries.
    """

    def __init__(self, model_id: str, spec: FaceModelSpec, path: Path, sha: str, *, device: str, batch_size: int,
                 check: bool = True) -> None:
        from dataclasses import replace

        from multiid_bench.faces.onnx_iresnet import iresnet_from_onnx

        net = iresnet_from_onnx(path, check=check)
        if net.config.input_size != spec.crop_size:
            raise ConfigError(f"{path} expects {net.config.input_size} px input, the card says {spec.crop_size}.")
        super().__init__(model_id, replace(spec, version=f"{spec.version}+torch"), sha, net, _rgb_pm1,
                         device=device, batch_size=batch_size)


def _load_arcface(model_id: str, spec: FaceModelSpec, path: Path, sha: str, *, device: str, batch_size: int,
                  backend: str | None) -> _Base:
    from multiid_bench.faces.onnx_iresnet import NotAnIResNetGraph

    chosen = resolve_face_backend(backend)
    if chosen == "onnxruntime":
        return ArcFaceONNX(model_id, spec, path, sha, device=device, batch_size=batch_size)
    try:
        return ArcFaceTorch(model_id, spec, path, sha, device=device, batch_size=batch_size)
    except NotAnIResNetGraph as e:
        if chosen == "torch":
            raise
        log.info("%s: %s; running it with onnxruntime", model_id, e)
        return ArcFaceONNX(model_id, spec, path, sha, device=device, batch_size=batch_size)


def _bgr_pm1(b: np.ndarray) -> np.ndarray:
    return (b[..., ::-1].astype(np.float32) / 255.0 - 0.5) / 0.5


def _bgr_01(b: np.ndarray) -> np.ndarray:
    return b[..., ::-1].astype(np.float32) / 255.0


def _rgb_facenet(b: np.ndarray) -> np.ndarray:
    return (b.astype(np.float32) - 127.5) / 128.0


class DlibModel(_Base):
    """dlib's ResNet face recogniser on 150 px dlib chips (batched through dlib's list overload)."""

    def __init__(self, model_id: str, spec: FaceModelSpec, path: Path, sha: str, *, batch_size: int) -> None:
        super().__init__(model_id, spec, sha, batch_size)
        dlib = require("dlib", "dlib-bin")
        self.net = dlib.face_recognition_model_v1(str(path))
        self._lock = threading.Lock()  # dlib's net object is not re-entrant
        self.runs_on = "dlib on " + ("CUDA" if getattr(dlib, "DLIB_USE_CUDA", False) else "CPU")

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            descs = self.net.compute_face_descriptor([np.ascontiguousarray(c) for c in batch])
        self.forward_passes += 1
        return np.asarray([np.asarray(d, dtype=np.float32) for d in descs], dtype=np.float32)


def _build_adaface(arch: str, path: Path):
    from multiid_bench.faces.checkpoints import load_state_dict, load_strict, strip_prefix
    from multiid_bench.faces.iresnet import ir_backbone

    net = ir_backbone(arch)
    state = strip_prefix(load_state_dict(path, key="state_dict"), "model.", only_prefixed=True)
    load_strict(net, state, path)
    return net


def _build_facenet(path: Path):
    from multiid_bench.faces.checkpoints import load_state_dict, load_strict

    fp = require("facenet_pytorch", "facenet-pytorch==2.5.3")
    net = fp.InceptionResnetV1(pretrained=None, classify=False)
    state = {k: v for k, v in load_state_dict(path).items() if not k.startswith("logits.")}
    load_strict(net, state, path)
    return net


def load_face_model(model_id: str, *, device: str = "cpu", cache_dir=None, offline: bool | None = None,
                    batch_size: int = 64, backend: str | None = None) -> _Base:
    """Load face model ``model_id`` (see :data:`FACE_MODELS`) with verified weights.

    ``backend`` applies to the ArcFace ONNX models: ``"torch"``, ``"onnxruntime"`` or ``"auto"`` (default,
    also from ``$MBENCH_FACE_BACKEND``): torch when the graph converts, else onnxruntime.

    Raises:
        ConfigError: unknown id (with suggestions).
        MissingWeightsError: weights missing offline, download failed or checksum mismatch (exit 3).
        MissingDependencyError: the model's Python package is not installed.
    """
    from multiid_bench.weights import get_store

    if model_id not in FACE_MODELS:
        from multiid_bench.faces.plugins import load_plugin_face_model

        plugin = load_plugin_face_model(model_id)
        if plugin is not None:
            return plugin  # type: ignore[return-value]
    spec = _spec(model_id)
    store = get_store(cache_dir, offline=offline)
    store.ensure([spec.weight_id])
    path = store.resolve(spec.weight_id, spec.filename)
    sha = store.expected_sha256(spec.weight_id, spec.filename)
    if model_id.startswith("arcface"):
        return _load_arcface(model_id, spec, path, sha, device=device, batch_size=batch_size, backend=backend)
    if model_id.startswith("adaface"):
        net = _build_adaface("ir_101" if model_id == "adaface-ir101" else "ir_50", path)
        return _TorchModel(model_id, spec, sha, net, _bgr_pm1, device=device, batch_size=batch_size)
    if model_id == "facenet":
        return _TorchModel(model_id, spec, sha, _build_facenet(path), _bgr_01, device=device, batch_size=batch_size)
    if model_id == "facenet-standard":
        return _TorchModel(model_id, spec, sha, _build_facenet(path), _rgb_facenet, device=device, batch_size=batch_size)
    if model_id == "dlib":
        return DlibModel(model_id, spec, path, sha, batch_size=batch_size)
    raise ConfigError(f"face model {model_id!r} has a spec but no loader")  # pragma: no cover
