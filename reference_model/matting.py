"""Optional background matting of reference face crops before SigLIP (spec §2.2; issue 18).

Why: the official README recommends removing the background when the SigLIP weight is > 0 (the SigLIP tokens
otherwise also copy the reference photo's background). The released code runs BiRefNet (``briaai/RMBG-2.0``,
gated, ``trust_remote_code``) on the 512² crop and pastes the crop onto black through the soft mask
(``util.extract_object``). Here the same network family runs from the BiRefNet-General ONNX export that
rembg publishes (danielgatis/rembg, the maintained background-removal library), through onnxruntime and the
weights store (id ``birefnet-general-onnx``, manifest ``reference_model.toml``): no remote code, no gating.

Pre-processing is the export's (rembg's BiRefNet sessions): RGB resized to ``input_size``² (Lanczos), scaled by
its maximum, ImageNet mean/std; the first output's channel 0 is the mask logit. Composition is the released one:
``sigmoid`` -> mask resized to the crop (bilinear) -> crop pasted onto black through the mask.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from multiid_bench.errors import BadInputError, MissingDependencyError

__all__ = ["MATTING_FILENAME", "MATTING_WEIGHT_ID", "BackgroundMatting", "MattedSiglipEncoder", "load_matting"]

MATTING_WEIGHT_ID = "birefnet-general-onnx"
MATTING_FILENAME = "BiRefNet-general-epoch_244.onnx"
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


class BackgroundMatting:
    """ONNX BiRefNet: PIL crops -> crops with the background replaced by black (and the masks)."""

    def __init__(self, model_path: str | Path, *, input_size: int = 1024, providers: Sequence[str] | None = None):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError("background matting needs onnxruntime: pip install onnxruntime") from exc
        self.session = ort.InferenceSession(str(model_path), providers=list(providers or ["CPUExecutionProvider"]))
        self.input_name = self.session.get_inputs()[0].name
        self.input_size = int(input_size)

    def preprocess(self, crop: Any) -> np.ndarray:
        from PIL import Image

        s = self.input_size
        arr = np.asarray(crop.convert("RGB").resize((s, s), Image.Resampling.LANCZOS), np.float32)
        arr = arr / max(float(arr.max()), 1e-6)
        return ((arr - MEAN) / STD).transpose(2, 0, 1)[None].astype(np.float32)

    def masks(self, crops: Sequence[Any]) -> list[np.ndarray]:
        """Soft masks in [0, 1], one (H, W) float32 array per crop, at the crop's size."""
        from PIL import Image

        out = []
        for crop in crops:
            logits = self.session.run(None, {self.input_name: self.preprocess(crop)})[0]
            if logits.ndim != 4 or logits.shape[0] != 1:
                raise BadInputError(f"matting model output has shape {logits.shape}; expected (1, 1, S, S)")
            mask = 1.0 / (1.0 + np.exp(-logits[0, 0].astype(np.float64)))
            img = Image.fromarray((mask * 255).astype(np.uint8), mode="L").resize(crop.size, Image.Resampling.BILINEAR)
            out.append(np.asarray(img, np.float32) / 255.0)
        return out

    def __call__(self, crops: Sequence[Any]) -> list[Any]:
        """Each crop pasted onto black through its mask (released ``extract_object``)."""
        from PIL import Image

        result = []
        for crop, mask in zip(crops, self.masks(crops)):
            black = Image.new("RGB", crop.size, (0, 0, 0))
            black.paste(crop.convert("RGB"), (0, 0), Image.fromarray((mask * 255).round().astype(np.uint8), "L"))
            result.append(black)
        return result


def load_matting(path: str | Path | None = None, *, cache_dir: str | Path | None = None, offline: bool | None = None,
                 input_size: int = 1024) -> BackgroundMatting:
    """A local ONNX file, or the weights store's ``birefnet-general-onnx`` (``mbench weights download ...``)."""
    if path is None:
        from multiid_bench.weights import resolve

        path = resolve(MATTING_WEIGHT_ID, MATTING_FILENAME, cache_dir=cache_dir, offline=offline)
    return BackgroundMatting(path, input_size=input_size)


class MattedSiglipEncoder:
    """A SigLIP face encoder whose crops are matted first; used where the plain encoder is (training and
    inference), so both see the same matted input."""

    def __init__(self, encoder: Any, matting: BackgroundMatting) -> None:
        self.encoder, self.matting = encoder, matting

    @property
    def model(self) -> Any:
        return self.encoder.model

    @property
    def image_size(self) -> int:
        return self.encoder.image_size

    def with_dtype(self, dtype: Any) -> MattedSiglipEncoder:
        return MattedSiglipEncoder(self.encoder.with_dtype(dtype), self.matting)

    def __call__(self, crops: Sequence[Any]) -> np.ndarray:
        return self.encoder(self.matting(list(crops)))
