"""Face detectors behind one interface: RGB uint8 images in, faces (box, score, 5 landmarks) out.

| id                 | network (weights id)                          | defaults (all overridable) |
|--------------------|-----------------------------------------------|----------------------------|
| ``scrfd``          | SCRFD-10GF ONNX (insightface-buffalo-l det_10g)   | 640x640 canvas, score >= 0.45, NMS 0.4 (official ArcFace) |
| ``scrfd-antelopev2``| SCRFD-10GF ONNX (insightface-antelopev2)        | 640x640, score >= 0.4 (WithAnyone's reference cropper) |
| ``retinaface``     | RetinaFace-R50 via facexlib (retinaface-r50-facexlib) | native resolution, score > 0.97, NMS 0.4 (official FaceNet/AdaFace) |
| ``mtcnn``          | MTCNN (facenet-pytorch, ships its weights)    | stage thresholds 0.6/0.7/0.7, min face 20 px, final score >= 0.9 |

Why ``min_score`` for MTCNN: its stage thresholds let background blobs through with final
probabilities around 0.86 (two on insightface's t1.jpg, whose six real faces score >= 0.97).
insightface 2.x defaults to multi-scale SCRFD (128 and 640); we pass the single 640 size explicitly,
as the official (older) insightface did.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from multiid_bench.errors import BadInputError, ConfigError
from multiid_bench.faces._deps import require
from multiid_bench.faces.runtime import ort_providers
from multiid_bench.faces.types import Face

__all__ = ["DETECTORS", "TOO_SMALL_REASON", "DetectorSpec", "detector_weight_ids", "load_detector", "too_small"]

#: Why an image has no face although nothing failed: the detector cannot run on so few pixels.
TOO_SMALL_REASON = "image too small for the detector"

log = logging.getLogger(__name__)


class DetectorSpec:
    """Weight id/file and default configuration of a detector id."""

    def __init__(self, weight_id: str, filename: str | None, defaults: dict[str, Any]) -> None:
        self.weight_id, self.filename, self.defaults = weight_id, filename, defaults


DETECTORS: dict[str, DetectorSpec] = {
    "scrfd": DetectorSpec("insightface-buffalo-l", "det_10g.onnx", {"threshold": 0.45, "det_size": 640, "nms": 0.4}),
    "scrfd-antelopev2": DetectorSpec("insightface-antelopev2", "scrfd_10g_bnkps.onnx",
                                     {"threshold": 0.4, "det_size": 640, "nms": 0.4}),
    "retinaface": DetectorSpec("retinaface-r50-facexlib", None, {"threshold": 0.97, "nms": 0.4, "max_side": None}),
    "mtcnn": DetectorSpec("mtcnn-facenet-pytorch", None, {"min_score": 0.9, "thresholds": (0.6, 0.7, 0.7),
                                                          "min_face_size": 20, "factor": 0.709}),
}


def detector_weight_ids(detector_id: str) -> list[str]:
    """Weight ids ``detector_id`` needs (for an offline preflight before anything loads)."""
    return [_spec(detector_id).weight_id]


def _spec(detector_id: str) -> DetectorSpec:
    if detector_id not in DETECTORS:
        import difflib

        close = difflib.get_close_matches(detector_id, list(DETECTORS), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown face detector {detector_id!r}.{hint} Available: {', '.join(DETECTORS)}.")
    return DETECTORS[detector_id]


def _check_images(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(images, np.ndarray) and images.ndim == 3:
        raise BadInputError("detect() takes a sequence of images; wrap a single image in a list.")
    out = []
    for i, im in enumerate(images):
        if not isinstance(im, np.ndarray) or im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
            raise BadInputError(f"image #{i}: expected (H, W, 3) uint8 RGB, got "
                                f"{getattr(im, 'shape', type(im).__name__)} {getattr(im, 'dtype', '')}.")
        out.append(np.ascontiguousarray(im))
    return out


def too_small(detector: Any, shape: Sequence[int]) -> bool:
    """True if ``detector`` cannot look at an image of ``shape`` ``(H, W, ...)`` at all.

    Such an image has no face (reason :data:`TOO_SMALL_REASON`); it is not unreadable. Detectors
    without an ``accepts`` method run on any size (SCRFD letterboxes onto its canvas, RetinaFace's
    convolutions pad), so only MTCNN has a floor.
    """
    accepts = getattr(detector, "accepts", None)
    return accepts is not None and not accepts(tuple(shape[:2]))


def _faces(boxes: np.ndarray, scores: np.ndarray, landmarks: np.ndarray) -> list[Face]:
    faces = [Face(box=tuple(b[:4]), score=float(s), landmarks=tuple(map(tuple, lm)))
             for b, s, lm in zip(boxes, scores, landmarks.reshape(-1, 5, 2))
             if np.isfinite(b[:4]).all() and np.isfinite(lm).all()]
    return sorted(faces, key=lambda f: -f.score)


class MTCNNDetector:
    """facenet-pytorch MTCNN, all faces kept, batched over same-sized images."""

    def __init__(self, paths: dict[str, Any], *, device: str, config: dict[str, Any]) -> None:
        import torch

        from multiid_bench.faces.checkpoints import load_state_dict

        fp = require("facenet_pytorch", "facenet-pytorch==2.5.3")
        self.id, self.config, self.device = "mtcnn", config, device
        self.runs_on = f"torch on {device}"
        self._net = fp.MTCNN(keep_all=True, post_process=False, select_largest=False, device=torch.device(device),
                             min_face_size=int(config["min_face_size"]), thresholds=list(config["thresholds"]),
                             factor=float(config["factor"]))
        for name, sub in (("pnet.pt", self._net.pnet), ("rnet.pt", self._net.rnet), ("onet.pt", self._net.onet)):
            sub.load_state_dict(load_state_dict(paths[name]), strict=True)  # the verified copy, not the package's
        self._net.eval()

    def accepts(self, hw: tuple[int, int]) -> bool:
        """facenet-pytorch's image pyramid is empty (and ``torch.cat`` raises) unless the shorter side,
        scaled by ``12 / min_face_size``, reaches P-Net's 12 px window; the same expression as its own."""
        return min(hw) * (12.0 / int(self.config["min_face_size"])) >= 12

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        import torch

        imgs = _check_images(images)
        results: list[list[Face]] = [[] for _ in imgs]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(imgs):
            if not self.accepts(im.shape[:2]):
                log.debug("image #%d (%dx%d): %s", i, im.shape[1], im.shape[0], TOO_SMALL_REASON)
                continue
            groups.setdefault(im.shape, []).append(i)
        for idx in groups.values():
            with torch.inference_mode():
                boxes, probs, points = self._net.detect(np.stack([imgs[i] for i in idx]), landmarks=True)
            for i, b, p, lm in zip(idx, boxes, probs, points):
                if b is None:
                    continue
                b = np.asarray(np.asarray(b).tolist(), dtype=np.float64).reshape(-1, 4)
                p = np.asarray(np.asarray(p).tolist(), dtype=np.float64).reshape(-1)
                lm = np.asarray(np.asarray(lm).tolist(), dtype=np.float64).reshape(-1, 5, 2)
                keep = p >= float(self.config["min_score"])
                results[i] = _faces(b[keep], p[keep], lm[keep])
        return results


class SCRFDDetector:
    """insightface SCRFD from a plain .onnx path (onnxruntime), single 640 canvas like the official eval."""

    def __init__(self, detector_id: str, path: str, *, device: str, config: dict[str, Any]) -> None:

        mz = require("insightface.model_zoo", "insightface")
        self.id, self.config = detector_id, config
        providers, dev_id = ort_providers(device)
        self._size = (int(config["det_size"]), int(config["det_size"]))
        self._model = mz.get_model(str(path), providers=providers)
        if self._model is None or not hasattr(self._model, "detect"):
            raise ConfigError(f"{path} is not an SCRFD detector ONNX (insightface could not route it).")
        self._model.prepare(ctx_id=dev_id, input_size=self._size, det_thresh=float(config["threshold"]),
                            nms_thresh=float(config["nms"]))
        session = getattr(self._model, "session", None)
        self.runs_on = f"onnxruntime {session.get_providers()[0]}" if session is not None else "onnxruntime"

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        out = []
        for im in _check_images(images):
            det, kps = self._model.detect(np.ascontiguousarray(im[..., ::-1]), input_size=self._size, max_num=0,
                                          det_thresh=float(self.config["threshold"]))
            if det is None or len(det) == 0 or kps is None:
                out.append([])
                continue
            out.append(_faces(det[:, :4], det[:, 4], kps))
        return out


class RetinaFaceDetector:
    """facexlib RetinaFace-ResNet50 at native resolution (optionally capped by ``max_side``)."""

    def __init__(self, path: str, *, device: str, config: dict[str, Any]) -> None:
        import torch

        from multiid_bench.faces.checkpoints import load_state_dict, load_strict, strip_prefix

        rf = require("facexlib.detection.retinaface", "multiid-bench[retinaface]' or 'facexlib")
        self.id, self.config, self.device = "retinaface", config, device
        self.runs_on = f"torch on {device}"
        with warnings.catch_warnings():  # facexlib still passes torchvision's deprecated `pretrained=False`
            warnings.simplefilter("ignore", UserWarning)
            self._net = rf.RetinaFace(network_name="resnet50", half=False, device=torch.device(device))
        load_strict(self._net, strip_prefix(load_state_dict(path), "module."), path)
        self._net.eval()

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        import cv2
        import torch

        out = []
        for im in _check_images(images):
            bgr, scale = im[..., ::-1], 1.0
            max_side = self.config.get("max_side")
            if max_side and max(im.shape[:2]) > int(max_side):
                scale = int(max_side) / max(im.shape[:2])
                bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            with torch.inference_mode():
                rows = self._net.detect_faces(np.ascontiguousarray(bgr), conf_threshold=float(self.config["threshold"]),
                                              nms_threshold=float(self.config["nms"]), use_origin_size=True)
            rows = np.asarray(rows, dtype=np.float64).reshape(-1, 15)
            rows[:, :4] /= scale
            rows[:, 5:] /= scale
            out.append(_faces(rows[:, :4], rows[:, 4], rows[:, 5:15]))
        return out


def load_detector(detector_id: str, *, device: str = "cpu", cache_dir=None, offline: bool | None = None,
                  **config: Any):
    """Load detector ``detector_id`` (see :data:`DETECTORS`); keyword arguments override its defaults.

    Raises:
        ConfigError: unknown id or unknown config key.
        MissingWeightsError: weights missing offline, download failed or checksum mismatch (exit 3).
        MissingDependencyError: the detector's Python package is not installed.
    """
    from multiid_bench.weights import get_store

    spec = _spec(detector_id)
    unknown = set(config) - set(spec.defaults)
    if unknown:
        raise ConfigError(f"detector {detector_id!r} has no option(s) {sorted(unknown)}; "
                          f"it accepts {sorted(spec.defaults)}.")
    cfg = {**spec.defaults, **config}
    store = get_store(cache_dir, offline=offline)
    store.ensure([spec.weight_id])
    if detector_id == "mtcnn":
        paths = {f.name: store.resolve(spec.weight_id, f.name) for f in store.entry(spec.weight_id).files}
        return MTCNNDetector(paths, device=device, config=cfg)
    path = store.resolve(spec.weight_id, spec.filename)
    if detector_id.startswith("scrfd"):
        return SCRFDDetector(detector_id, str(path), device=device, config=cfg)
    return RetinaFaceDetector(str(path), device=device, config=cfg)
