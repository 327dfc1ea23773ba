"""Reference photos -> identity conditions: first face, raw ArcFace (glintr100) embedding, SigLIP crop features.

Spec §2.2: insightface antelopev2 (SCRFD-10G + glintr100), the most confident face of each reference, its
**raw** (un-normalised) 512-d embedding of the ArcFace-aligned 112 crop; for the SigLIP branch the detection
box made square, clipped to the image, resized to 512² (Lanczos), then the SigLIP vision tower's
``last_hidden_state`` (256 x 768 at 256 px). The face stack comes from ``multiid_bench.faces`` (imported
lazily, by id); every piece is injectable so tests can use stand-ins.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from multiid_bench.errors import BadInputError, ConfigError, MissingDependencyError, MissingWeightsError

__all__ = [
    "DETECTOR_ID",
    "FACE_MODEL_ID",
    "SIGLIP_WEIGHT_ID",
    "ReferenceEncoder",
    "ReferenceIdentities",
    "SiglipFaceEncoder",
    "load_reference_encoder",
    "reference_weight_ids",
    "square_face_crop",
    "to_rgb_array",
]

logger = logging.getLogger(__name__)

# Ids in the face pipeline's registry (multiid_bench.faces): antelopev2's detector and recogniser.
DETECTOR_ID = "scrfd-antelopev2"
FACE_MODEL_ID = "arcface-glintr100"
SIGLIP_WEIGHT_ID = "siglip-base-patch16-256-multilingual"


def to_rgb_array(image: Any, index: int = 0) -> np.ndarray:
    """PIL image, (H, W, 3) uint8 array or file path -> (H, W, 3) uint8 RGB."""
    if isinstance(image, (str, Path)):
        from multiid_bench.images import load_rgb_array

        return load_rgb_array(image)
    if hasattr(image, "convert"):  # PIL
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise BadInputError(
            f"reference {index}: expected an RGB uint8 array (H, W, 3), a PIL image or a path; got "
            f"{arr.dtype} {arr.shape}."
        )
    return arr


def square_face_crop(image: np.ndarray, box: Sequence[float], size: int = 512) -> Any:
    """Detection box grown to a square around its centre (short side), clipped to the image, resized (Lanczos)."""
    from PIL import Image

    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    l, t = int(max(0, round(cx - side / 2))), int(max(0, round(cy - side / 2)))
    r, b = int(min(w, round(cx + side / 2))), int(min(h, round(cy + side / 2)))
    return Image.fromarray(image[t:b, l:r]).resize((size, size), Image.LANCZOS)


@dataclass(frozen=True)
class ReferenceIdentities:
    """Per reference, in order: raw ArcFace embedding (N, 512), chosen face box, optional SigLIP features."""

    arcface: np.ndarray
    boxes: tuple[tuple[float, float, float, float], ...]
    siglip: np.ndarray | None = None


class SiglipFaceEncoder:
    """SigLIP vision tower -> (N, 256, 768) ``last_hidden_state`` of 512² face crops (resize 256, mean=std=0.5)."""

    def __init__(self, model: Any, image_size: int | None = None, device: str = "cpu") -> None:
        self.model = model.eval()
        self.image_size = int(image_size or model.config.image_size)
        self.device = device
        self._by_dtype: dict[Any, SiglipFaceEncoder] = {}

    def with_dtype(self, dtype: Any) -> SiglipFaceEncoder:
        """This encoder with the tower in ``dtype`` (``numerics="official"`` runs SigLIP in bf16, as released).

        A cast copy is made once and cached, so the original weights are never rounded in place."""
        import copy

        if next(self.model.parameters()).dtype == dtype:
            return self
        if dtype not in self._by_dtype:
            self._by_dtype[dtype] = SiglipFaceEncoder(copy.deepcopy(self.model).to(dtype), self.image_size,
                                                      self.device)
        return self._by_dtype[dtype]

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path | None = None, *, device: str = "cpu", dtype: Any = None,
                        cache_dir: str | Path | None = None, offline: bool | None = None) -> SiglipFaceEncoder:
        """Load the vision tower from a local folder/HF id, or from the weights store when None."""
        try:
            from transformers import SiglipVisionModel
        except ImportError as exc:
            raise MissingDependencyError(
                "the SigLIP branch needs transformers: pip install 'transformers>=4.44'."
            ) from exc
        if path_or_id is None:
            from multiid_bench.weights import resolve

            cfg = resolve(SIGLIP_WEIGHT_ID, "config.json", cache_dir=cache_dir, offline=offline)
            resolve(SIGLIP_WEIGHT_ID, "model.safetensors", cache_dir=cache_dir, offline=offline)
            path_or_id = Path(cfg).parent
        try:
            model = SiglipVisionModel.from_pretrained(str(path_or_id), torch_dtype=dtype)
        except OSError as exc:
            raise MissingWeightsError(
                f"SigLIP weights not found at {path_or_id} ({exc}); run 'mbench weights download {SIGLIP_WEIGHT_ID}'."
            ) from exc
        return cls(model.to(device), device=device)

    def __call__(self, crops: Sequence[Any]) -> np.ndarray:
        import torch
        from PIL import Image

        s = self.image_size
        arr = np.stack([np.asarray(c.convert("RGB").resize((s, s), Image.BICUBIC), dtype=np.float32) for c in crops])
        x = torch.from_numpy(arr).permute(0, 3, 1, 2).div(255.0).sub(0.5).div(0.5)
        p = next(self.model.parameters())
        with torch.inference_mode():
            out = self.model(pixel_values=x.to(p.device, p.dtype)).last_hidden_state
        return out.float().cpu().numpy()


class ReferenceEncoder:
    """Detector + ArcFace model (+ optional SigLIP) -> ``ReferenceIdentities``; raises on a face-less reference."""

    def __init__(self, detector: Any, face_model: Any, *, aligner: Callable[..., np.ndarray] | None = None,
                 siglip: Callable[[Sequence[Any]], np.ndarray] | None = None) -> None:
        self.detector, self.face_model, self.siglip = detector, face_model, siglip
        self._aligner = aligner

    def _align(self, image: np.ndarray, faces: Sequence[Any]) -> np.ndarray:
        if self._aligner is None:
            try:
                from multiid_bench.faces import align_faces
            except ImportError as exc:
                raise MissingDependencyError(
                    f"multiid_bench.faces is not importable ({exc}); reinstall multiid-bench or pass aligner=."
                ) from exc
            self._aligner = align_faces
        return self._aligner(image, faces, "arcface", 112)

    def detect_first(self, images: Sequence[Any], labels: Sequence[str] | None = None) -> list[tuple[np.ndarray, Any]]:
        """(array, most confident face) per image; BadInputError naming the reference when none is found."""
        arrays = [to_rgb_array(img, i) for i, img in enumerate(images)]
        detections = self.detector.detect(arrays)
        out = []
        for i, (arr, faces) in enumerate(zip(arrays, detections)):
            if not faces:
                name = labels[i] if labels else f"reference {i}"
                raise BadInputError(
                    f"{name}: no face detected by {getattr(self.detector, 'id', 'the detector')}; use a photo where "
                    "the face is visible, frontal-ish and at least ~64 px wide, or pass arcface_embeddings directly."
                )
            out.append((arr, max(faces, key=lambda f: f.score)))
        return out

    def encode(
        self, images: Sequence[Any], *, with_siglip: bool = False, labels: Sequence[str] | None = None,
        siglip_dtype: Any = None,
    ) -> ReferenceIdentities:
        """ArcFace (raw) embeddings of each reference's most confident face (+ SigLIP tokens of its square crop,
        with the tower in ``siglip_dtype`` when given: ``numerics="official"`` asks for bf16)."""
        firsts = self.detect_first(images, labels)
        crops = np.concatenate([self._align(arr, [face]) for arr, face in firsts], axis=0)
        emb = np.asarray(self.face_model.embed(crops), dtype=np.float32)
        sig = None
        if with_siglip:
            if self.siglip is None:
                raise BadInputError("lambda_sig > 0 needs a SigLIP encoder: pass siglip= to the ReferenceEncoder.")
            encoder = self.siglip
            if siglip_dtype is not None:
                if not hasattr(encoder, "with_dtype"):
                    raise ConfigError(f"numerics='official' runs SigLIP in {siglip_dtype}, but the SigLIP encoder "
                                      f"{type(encoder).__name__} has no with_dtype(); use SiglipFaceEncoder or pass "
                                      "siglip_features computed in that dtype.")
                encoder = encoder.with_dtype(siglip_dtype)
            sig = np.asarray(encoder([square_face_crop(arr, face.box) for arr, face in firsts]), dtype=np.float32)
        boxes = tuple(tuple(float(v) for v in face.box) for _, face in firsts)
        return ReferenceIdentities(arcface=emb, boxes=boxes, siglip=sig)  # type: ignore[arg-type]


def reference_weight_ids(*, with_siglip: bool = False) -> list[str]:
    """Weight ids of the reference stack (for an offline preflight before anything loads)."""
    from multiid_bench.faces import detector_weight_ids, face_model_weight_ids

    ids = [*detector_weight_ids(DETECTOR_ID), *face_model_weight_ids(FACE_MODEL_ID)]
    return list(dict.fromkeys(ids + ([SIGLIP_WEIGHT_ID] if with_siglip else [])))


def load_reference_encoder(*, device: str = "cpu", with_siglip: bool = False, cache_dir: str | Path | None = None,
                           offline: bool | None = None) -> ReferenceEncoder:
    """The paper's reference stack: SCRFD (antelopev2) + glintr100 from ``multiid_bench.faces``."""
    try:
        from multiid_bench.faces import load_detector, load_face_model
    except ImportError as exc:
        raise MissingDependencyError(
            f"multiid_bench.faces is not importable ({exc}); reinstall multiid-bench, or pass arcface_embeddings "
            "to the pipeline."
        ) from exc
    detector = load_detector(DETECTOR_ID, device=device, cache_dir=cache_dir, offline=offline)
    face_model = load_face_model(FACE_MODEL_ID, device=device, cache_dir=cache_dir, offline=offline)
    siglip = None
    if with_siglip:
        siglip = SiglipFaceEncoder.from_pretrained(device=device, cache_dir=cache_dir, offline=offline)
    return ReferenceEncoder(detector, face_model, siglip=siglip)
