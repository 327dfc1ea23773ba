"""Aesthetic score: aesthetic-predictor v2.5 (SigLIP so400m-patch14-384 + MLP head), bf16 as the paper.

Pipeline (the reference's ``convert_v2_5_from_siglip`` model, re-built here):
image -> resize to 384x384 (PIL bicubic, no crop) -> /255 -> (x - 0.5) / 0.5 -> SigLIP vision tower ->
pooled output (attention-pool head) -> divide by its L2 norm -> MLP 1152-1024-128-64-16-1 -> the logit,
roughly on a 1-10 scale. Model, head and pixels in bfloat16 by default (``dtype="float32"`` selectable).

Why not the PyPI package's model object: it loads fine offline from a local folder with our pins (the tests
use it as an oracle), but its loader falls back to a download when the head path does not exist, checks
the head with ``assert``, loads the whole SigLIP (text tower included) and silences transformers' logging
globally on import; and under transformers 5 its processor is the torchvision backend, not the PIL path
the reference ran. Here the weights come from the store and the preprocessing is the PIL path.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np
import numpy.typing as npt

from multiid_bench.errors import ConfigError
from multiid_bench.scorers.base import ImageLike, ImageScorer, ScorerCard, resolve_weight_file

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = ["AESTHETIC_HEAD_ID", "SIGLIP_ID", "AestheticDtype", "AestheticScorer", "siglip_pixels"]

AestheticDtype = Literal["bfloat16", "float32", "float16"]
_DTYPES: tuple[str, ...] = ("bfloat16", "float32", "float16")
#: Weights-store ids (see multiid_bench/weights/manifests/scorers.toml).
SIGLIP_ID = "siglip-so400m-patch14-384"
AESTHETIC_HEAD_ID = "aesthetic-predictor-v2-5"
#: SigLIP normalisation: mean = std = 0.5 per channel (the checkpoint's preprocessor_config.json).
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


def siglip_pixels(image: "Image.Image", size: int = 384) -> "torch.Tensor":
    """``SiglipImageProcessor``'s PIL path for one RGB image: ``(3, size, size)`` float32 in [-1, 1].

    Resize to ``size x size`` with PIL bicubic (aspect ratio not kept, no crop), /255, then
    ``(x - 0.5) / 0.5``.
    """
    import torch
    from PIL import Image

    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    t = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255.0)
    m = torch.tensor(SIGLIP_MEAN, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(SIGLIP_STD, dtype=torch.float32).view(-1, 1, 1)
    return (t - m) / s


class AestheticScorer(ImageScorer):
    """Aesthetic v2.5: ``encode_images`` gives unit-norm SigLIP pooled features, ``score_features`` the scores.

    Args:
        siglip_dir: local folder with ``config.json`` and ``model.safetensors`` of
            ``google/siglip-so400m-patch14-384`` (full or vision-only checkpoint) instead of the store.
        head: local ``aesthetic_predictor_v2_5.pth`` (state dict) instead of the store.
        dtype: ``"bfloat16"`` (paper, default: the reference ran bf16), ``"float32"`` or ``"float16"``;
            recorded in the card and the cache key (difference measured in docs/scorers.md).
        batch_size: images per forward pass.
        cache_dir / offline: weights-store options.

    Example:
        >>> s = AestheticScorer(); s.load("cuda")                    # doctest: +SKIP
        >>> s.score_images([generated_image])                         # doctest: +SKIP
        array([5.93...])
    """

    scorer_id = "aesthetic"
    metrics = ("aesthetic",)
    VERSION = "1.0.0"

    def __init__(
        self,
        *,
        siglip_dir: str | os.PathLike[str] | None = None,
        head: str | os.PathLike[str] | None = None,
        dtype: AestheticDtype = "bfloat16",
        batch_size: int = 16,
        cache_dir: str | os.PathLike[str] | None = None,
        offline: bool | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, cache_dir=cache_dir, offline=offline)
        if dtype not in _DTYPES:
            raise ConfigError(f"aesthetic dtype must be one of {_DTYPES}, got {dtype!r}")
        self.siglip_dir = Path(siglip_dir).expanduser() if siglip_dir is not None else None
        self.head_path = head
        self.dtype = dtype
        self._folder: Path | None = None
        self._head_file: Path | None = None
        self._image_size = 384
        self._vision: Any = None
        self._head: Any = None

    @property
    def weight_ids(self) -> tuple[str, ...]:
        ids = [] if self.siglip_dir is not None else [SIGLIP_ID]
        if self.head_path is None:
            ids.append(AESTHETIC_HEAD_ID)
        return tuple(ids)

    # ---- hooks --------------------------------------------------------------------------------
    def _resolve(self) -> ScorerCard:
        local = self.siglip_dir
        config, c_sha = resolve_weight_file(SIGLIP_ID, "config.json", local / "config.json" if local else None,
                                            cache_dir=self.cache_dir, offline=self.offline)
        weights, w_sha = resolve_weight_file(SIGLIP_ID, "model.safetensors",
                                             local / "model.safetensors" if local else None,
                                             cache_dir=self.cache_dir, offline=self.offline)
        if config.parent.resolve() != weights.parent.resolve():
            raise ConfigError(
                f"SigLIP config {config} and weights {weights} are in different folders; point "
                f"MBENCH_WEIGHTS_SIGLIP_SO400M_PATCH14_384 (or siglip_dir) at the folder holding both"
            )
        self._head_file, h_sha = resolve_weight_file(AESTHETIC_HEAD_ID, None, self.head_path,
                                                     cache_dir=self.cache_dir, offline=self.offline)
        self._folder = weights.parent
        from transformers import SiglipVisionConfig  # after the weights: a missing file fails fast

        vcfg = SiglipVisionConfig.from_pretrained(str(config))  # a full SiglipConfig yields its vision part
        self._image_size = int(vcfg.image_size)
        return ScorerCard(
            id=self.scorer_id,
            version=self.VERSION,
            metrics=self.metrics,
            model=(f"aesthetic-predictor-v2.5: SigLIP vision {vcfg.hidden_size}d/{vcfg.num_hidden_layers}L "
                   f"patch{vcfg.patch_size}@{vcfg.image_size} + MLP head"),
            weights=(
                (f"{SIGLIP_ID}/config.json", c_sha),
                (f"{SIGLIP_ID}/model.safetensors", w_sha),
                (f"{AESTHETIC_HEAD_ID}/{self._head_file.name}", h_sha),
            ),
            preprocess=f"SiglipImageProcessor (PIL): resize {self._image_size}x{self._image_size} bicubic, /255, "
                       "(x-0.5)/0.5; pooled output L2-normalised",
            preprocess_version=f"siglip-pil-{self._image_size}-v1",
            dtype=self.dtype,
            feature_dim=int(vcfg.hidden_size),
        )

    def _torch_dtype(self) -> "torch.dtype":
        import torch

        return getattr(torch, self.dtype)

    def _build(self, device: str) -> None:
        from multiid_bench.scorers._aesthetic_model import load_head, load_siglip_vision

        dt = self._torch_dtype()
        self._vision = load_siglip_vision(self._folder).to(device=device, dtype=dt)
        self._head = load_head(self._head_file, self.card.feature_dim).to(device=device, dtype=dt)

    def _pixels(self, image: "Image.Image") -> "torch.Tensor":
        return siglip_pixels(image, self._image_size)

    def _forward(self, batch: "torch.Tensor") -> "torch.Tensor":
        pooled = self._vision(pixel_values=batch.to(self._torch_dtype())).pooler_output
        return pooled / pooled.norm(dim=-1, keepdim=True)

    # ---- scoring ------------------------------------------------------------------------------
    def score_features(self, features: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Aesthetic scores from :meth:`encode_images` features (run in this scorer's dtype).

        Args:
            features: ``(N, D)`` unit-norm SigLIP features (cached or fresh).

        Returns:
            ``(N,)`` float64, the head's logit (roughly 1-10; not clipped).
        """
        import torch

        if not self.loaded:
            raise RuntimeError("AestheticScorer: call load(device) before score_features")
        x = np.asarray(features, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.card.feature_dim:
            raise ValueError(f"expected features of shape (N, {self.card.feature_dim}); got {x.shape}")
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, x.shape[0], self.batch_size):
                chunk = torch.from_numpy(x[start : start + self.batch_size]).to(self.device, self._torch_dtype())
                out.append(self._head(chunk).float().cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0, dtype=np.float64)

    def score_images(self, images: Sequence[ImageLike]) -> npt.NDArray[np.float64]:
        """``score_features(encode_images(images))``: one aesthetic score per image."""
        return self.score_features(self.encode_images(images))
