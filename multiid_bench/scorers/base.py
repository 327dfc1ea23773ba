"""What every generation-quality scorer shares: its card, the batched encode loop, weight lookup, cache keys.

Why a split between *encoding* and *scoring*: GT photos are the same for every model evaluated on a bench,
so the runner encodes each image once, caches its features under :meth:`ScorerCard.cache_key` (image
content + scorer + weights + preprocessing) and computes the metric from cached features with pure numpy.
A scorer therefore exposes ``encode_images`` (torch, batched, inference mode) and module-level scoring
functions that never touch a model.

Nothing here imports torch at module level; subclasses import it inside ``load``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Sequence, Union

import numpy as np
import numpy.typing as npt

from multiid_bench.errors import BadInputError, MissingWeightsError
from multiid_bench.metrics.cards import MetricCard, get_card
from multiid_bench.metrics.identity import cosine_matrix

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = ["ImageLike", "ImageScorer", "ScorerCard", "as_rgb_image", "paired_cosine"]

log = logging.getLogger(__name__)

#: An image a scorer accepts: a PIL image (any mode; converted to RGB) or an ``(H, W, 3)`` uint8 RGB array
#: (what :class:`multiid_bench.images.DecodedImage` holds).
ImageLike = Union["Image.Image", np.ndarray]
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ScorerCard:
    """Everything that determines a scorer's numbers, recorded in results and hashed into cache keys.

    Attributes:
        id: scorer id (``"clip"``, ``"aesthetic"``, ``"fid"``).
        version: scorer code version; bump on any change that can move a number.
        metrics: metric ids it feeds (see :mod:`multiid_bench.metrics.cards`).
        model: architecture as loaded, e.g. ``"open_clip:ViT-B-16 quick_gelu=True"``.
        weights: ``(("<weight id>/<file>", sha256), ...)`` of every file loaded.
        preprocess: the preprocessing in words (resize, crop, normalisation).
        preprocess_version: short tag of that preprocessing, part of the cache key.
        dtype: compute dtype (``"float32"`` or ``"bfloat16"``).
        feature_dim: width of the features :meth:`ImageScorer.encode_images` returns.
    """

    id: str
    version: str
    metrics: tuple[str, ...]
    model: str
    weights: tuple[tuple[str, str], ...]
    preprocess: str
    preprocess_version: str
    dtype: str
    feature_dim: int

    @property
    def weights_sha256(self) -> str:
        """The file's sha256 for one file; for several, sha256 of the sorted ``name=sha`` lines."""
        if len(self.weights) == 1:
            return self.weights[0][1]
        lines = "\n".join(f"{name}={sha}" for name, sha in sorted(self.weights))
        return hashlib.sha256(lines.encode()).hexdigest()

    def metric_cards(self) -> tuple[MetricCard, ...]:
        """The metric cards of :attr:`metrics` (scale, arrow, range)."""
        return tuple(get_card(m) for m in self.metrics)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for ``results.json`` (``weights`` as a mapping)."""
        d = asdict(self)
        d["metrics"] = list(self.metrics)
        d["weights"] = {name: sha for name, sha in self.weights}
        d["weights_sha256"] = self.weights_sha256
        return d

    def cache_key(self, image_sha256: str) -> str:
        """Key of one image's features: its content hash plus everything on this card that moves a number.

        Example:
            >>> c = ScorerCard("clip", "1", ("clip_i",), "m", (("w/f", "ab" * 32),), "p", "p1", "float32", 4)
            >>> c.cache_key("cd" * 32).startswith("clip-") and c.cache_key("cd" * 32) != c.cache_key("ef" * 32)
            True
        """
        fields = {k: v for k, v in self.to_dict().items() if k not in ("preprocess", "metrics")}
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]
        return f"{self.id}-{digest}-{image_sha256}"


def as_rgb_image(image: ImageLike, index: int = 0) -> "Image.Image":
    """An 8-bit RGB PIL image from a PIL image of any mode or an ``(H, W, 3)`` uint8 array.

    Raises:
        BadInputError: anything else (wrong shape, dtype or type), naming the position in the batch.
    """
    from PIL import Image

    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise BadInputError(
                f"image #{index}: expected an (H, W, 3) uint8 RGB array, got shape {image.shape} "
                f"dtype {image.dtype}; decode files with multiid_bench.images.load_rgb_array"
            )
        return Image.fromarray(np.ascontiguousarray(image))
    raise BadInputError(f"image #{index}: expected a PIL image or an (H, W, 3) uint8 array, got {type(image).__name__}")


def paired_cosine(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Row-wise cosine ``cos(a[i], b[i])`` as raw values in ``[-1, 1]`` (not x100, not clamped).

    Uses :func:`multiid_bench.metrics.identity.cosine_matrix` per pair, so the cosine formula (and its
    zero-vector rule) lives in one place.

    Args:
        a: ``(N, D)`` features. b: ``(N, D)`` features, row ``i`` paired with ``a[i]``.

    Returns:
        ``(N,)`` float64.

    Example:
        >>> paired_cosine([[1.0, 0.0], [0.0, 2.0]], [[3.0, 0.0], [0.0, -1.0]]).tolist()
        [1.0, -1.0]
    """
    a2, b2 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a2.ndim != 2 or b2.ndim != 2 or a2.shape != b2.shape:
        raise ValueError(f"paired features must both be (N, D) with the same shape; got {a2.shape} and {b2.shape}")
    return np.array([cosine_matrix(a2[i : i + 1], b2[i : i + 1])[0, 0] for i in range(a2.shape[0])], dtype=np.float64)


def resolve_weight_file(
    weight_id: str,
    filename: str | None,
    explicit: str | os.PathLike[str] | None,
    *,
    cache_dir: str | os.PathLike[str] | None,
    offline: bool | None,
) -> tuple[Path, str]:
    """``(path, sha256)`` of a weight file: an explicit local path, else the weights store.

    An explicit path is hashed here (it is not in the manifest); a store file was verified by the store,
    whose recorded hash is reused instead of hashing gigabytes again.

    Raises:
        MissingWeightsError: the explicit path does not exist, or the store has no copy and may not (or
            could not) download one; the message names the file and the fetch command.
    """
    from multiid_bench.weights import get_store, sha256_file

    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise MissingWeightsError(
                f"weights {weight_id}{'/' + filename if filename else ''}: the file given, {path}, does not exist. "
                f"Pass an existing file, or omit it to use the cache (`mbench weights download {weight_id}`)."
            )
        return path, sha256_file(path)
    store = get_store(cache_dir, offline=offline)
    path = store.resolve(weight_id, filename)
    return path, store.expected_sha256(weight_id, filename) or sha256_file(path)


class ImageScorer(ABC):
    """Base of the image scorers: resolve weights, load a model, encode PIL/array images in batches.

    Subclasses set :attr:`scorer_id` and :attr:`metrics`, and implement :meth:`_resolve`, :meth:`_build`,
    :meth:`_pixels` (one image -> ``(C, H, W)`` float tensor) and :meth:`_forward` (batch -> ``(B, D)``).
    """

    scorer_id: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]

    def __init__(self, *, batch_size: int = 16, cache_dir: str | os.PathLike[str] | None = None,
                 offline: bool | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.offline = offline
        self.device: str | None = None
        self._card: ScorerCard | None = None

    # ---- public -------------------------------------------------------------------------------
    @property
    @abstractmethod
    def weight_ids(self) -> tuple[str, ...]:
        """Manifest ids this scorer will read from the store (for ``preflight`` before any model loads)."""

    @property
    def card(self) -> ScorerCard:
        """The scorer card; known once weights are resolved (:meth:`resolve_weights` or :meth:`load`)."""
        if self._card is None:
            raise RuntimeError(f"{type(self).__name__}: call resolve_weights() or load() before reading the card")
        return self._card

    @property
    def loaded(self) -> bool:
        return self.device is not None

    def resolve_weights(self) -> ScorerCard:
        """Find (and verify, or download when allowed) every weight file; fills :attr:`card`. No model is built.

        Raises:
            MissingWeightsError: a file is missing and cannot be fetched (the runner then reports the
                metric as missing, never as 0).
        """
        if self._card is None:
            if self.weight_ids:
                from multiid_bench.weights import get_store

                # one error listing every missing file (all ids), before anything is loaded
                get_store(self.cache_dir, offline=self.offline).ensure(self.weight_ids,
                                                                       what=f"scorer {self.scorer_id}")
            self._card = self._resolve()
        return self._card

    def load(self, device: str = "cpu") -> None:
        """Resolve weights and build the model on ``device`` in eval mode (heavy imports happen here)."""
        self.resolve_weights()
        self._build(device)
        self.device = device
        log.info("loaded scorer %s (%s) on %s", self.card.id, self.card.model, device)

    def encode_images(self, images: Sequence[ImageLike]) -> FloatArray:
        """Features of ``images`` in batches of :attr:`batch_size`, under ``torch.inference_mode``.

        Returns:
            ``(N, D)`` float32, one row per image in input order; ``(0, D)`` for no images.
        """
        import torch

        if not self.loaded:
            raise RuntimeError(f"{type(self).__name__}: call load(device) before encode_images")
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start : start + self.batch_size]
                batch = torch.stack([self._pixels(as_rgb_image(im, start + i)) for i, im in enumerate(chunk)])
                feats = self._forward(batch.to(self.device))
                out.append(feats.float().cpu().numpy())
        if not out:
            return np.zeros((0, self.card.feature_dim), dtype=np.float32)
        return np.concatenate(out, axis=0).astype(np.float32, copy=False)

    # ---- subclass hooks -----------------------------------------------------------------------
    @abstractmethod
    def _resolve(self) -> ScorerCard:
        """Locate weight files and return the card (no model built)."""

    @abstractmethod
    def _build(self, device: str) -> None:
        """Build the model from the resolved files on ``device``."""

    @abstractmethod
    def _pixels(self, image: "Image.Image") -> "torch.Tensor":
        """One RGB image -> ``(C, H, W)`` float32 tensor, exactly as the model expects it."""

    @abstractmethod
    def _forward(self, batch: "torch.Tensor") -> "torch.Tensor":
        """``(B, C, H, W)`` on the device -> ``(B, D)`` features."""
