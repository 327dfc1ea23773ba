"""FID between the generated images and the GT photos: Inception pool3 features + Fréchet distance.

The formula (Heusel et al. 2017), on feature means ``mu`` and covariances ``S`` (``np.cov``, ddof=1)::

    FID = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr( sqrtm(S_1 S_2) )

``sqrtm`` is ``scipy.linalg.sqrtm``. When the product is singular enough that the result is not finite
(common here: a few hundred images give rank-deficient 2048x2048 covariances), it is retried once on
``(S_1 + eps I)(S_2 + eps I)`` with ``eps = 1e-6`` and a warning is logged; an imaginary part larger than
1e-3 on the diagonal raises instead of being dropped silently.

Input normalisation, once: the image is resized (shorter side 299, PIL bilinear, antialiased) and
centre-cropped to 299 (the reference's geometry), scaled to [0, 1] and mapped to [-1, 1] with ``2x - 1``,
the range the TensorFlow Inception weights expect. The reference additionally applied ImageNet mean/std
before pytorch-fid's own ``2x - 1`` (double normalisation), so its numbers are not comparable to these.

**Bias**: FID is biased upwards at small N and a subset has a few hundred images, far below the 2048
feature dimension; compare FIDs only at equal N, never against published 50k-image FIDs.
"""
from __future__ import annotations

import logging
import os
import warnings
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import numpy.typing as npt

from multiid_bench.errors import ConfigError
from multiid_bench.scorers.base import ImageScorer, ScorerCard, resolve_weight_file

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = [
    "FID_INCEPTION_ID",
    "FID_SQRTM_EPS",
    "FidScorer",
    "feature_statistics",
    "fid_from_features",
    "fid_pixels",
    "frechet_distance",
]

log = logging.getLogger(__name__)

FID_INCEPTION_ID = "fid-inception-2015-12-05"
_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
#: Diagonal offset of the single retry when ``sqrtm(S_1 S_2)`` is not finite (pytorch-fid's value).
FID_SQRTM_EPS = 1e-6
#: Largest imaginary part tolerated on the diagonal of ``sqrtm`` before the result is refused.
_IMAG_ATOL = 1e-3
FID_INPUT_SIZE = 299


def feature_statistics(features: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (ddof=1) of ``(N, D)`` features, in float64.

    Raises:
        ValueError: fewer than 2 rows (no covariance), non-finite values, or not 2-D.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"FID features must be (N, D); got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 images per set to estimate a covariance; got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError("FID features contain NaN or inf")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def frechet_distance(
    mu1: npt.ArrayLike, sigma1: npt.ArrayLike, mu2: npt.ArrayLike, sigma2: npt.ArrayLike, eps: float = FID_SQRTM_EPS
) -> float:
    """Fréchet distance of two Gaussians ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    ``|mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 @ sigma2))``; retried once with
    ``eps`` added to both diagonals when ``sqrtm`` is not finite.

    Raises:
        ValueError: shapes disagree, or ``sqrtm`` has a diagonal imaginary part above 1e-3.

    Example:
        >>> round(frechet_distance([1.0], [[2.0]], [3.0], [[8.0]]), 10)   # (1-3)^2 + (sqrt2 - sqrt8)^2
        6.0
    """
    from scipy import linalg

    m1, m2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    d = m1.shape[0]
    if m2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"FID statistics disagree: mu {m1.shape} vs {m2.shape}, sigma {s1.shape} vs {s2.shape}")
    diff = m1 - m2
    with warnings.catch_warnings():
        # scipy warns on singular products; that is the normal case at N < D and is handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
        if not np.all(np.isfinite(covmean)):
            log.warning("FID: sqrtm(S1 S2) is not finite (singular covariances); retrying with %g added to the "
                        "diagonals", eps)
            offset = np.eye(d) * eps
            covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.max(np.abs(np.diagonal(covmean).imag))
        if imag > _IMAG_ATOL:
            raise ValueError(f"FID: sqrtm has a diagonal imaginary part of {imag:.3g} (> {_IMAG_ATOL}); "
                             "the covariances are numerically unusable (too few images?)")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid_from_features(features_a: npt.ArrayLike, features_b: npt.ArrayLike, eps: float = FID_SQRTM_EPS) -> float:
    """FID of two feature sets ``(N_a, D)`` and ``(N_b, D)`` (e.g. generated vs GT), N >= 2 each.

    Logs a warning when a set has no more images than feature dimensions (rank-deficient covariance):
    the value is then strongly biased and only comparable with FIDs computed at the same N.
    """
    mu_a, sigma_a = feature_statistics(features_a)
    mu_b, sigma_b = feature_statistics(features_b)
    n_a, n_b, dim = len(np.asarray(features_a)), len(np.asarray(features_b)), mu_a.shape[0]
    if min(n_a, n_b) <= dim:
        log.warning("FID on %d vs %d images with %d-d features: covariances are rank-deficient, the value is "
                    "biased; compare only at equal N", n_a, n_b, dim)
    return frechet_distance(mu_a, sigma_a, mu_b, sigma_b, eps=eps)


def fid_pixels(image: "Image.Image", size: int = FID_INPUT_SIZE) -> "torch.Tensor":
    """One RGB image -> ``(3, size, size)`` float32 in [-1, 1]: shorter side ``size`` (PIL bilinear),
    centre crop, ``x / 255 * 2 - 1``. The only normalisation the FID network sees."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    image = TF.center_crop(TF.resize(image, size, interpolation=InterpolationMode.BILINEAR), [size, size])
    return TF.to_tensor(image) * 2.0 - 1.0


class FidScorer(ImageScorer):
    """Pool3 features for FID; ``fid_from_features`` turns two feature sets into the number.

    Args:
        weights: local ``pt_inception-2015-12-05-6726825d.pth`` instead of the store.
        extractor: any ``torch.nn.Module`` (or callable) mapping ``(N, 3, 299, 299)`` in [-1, 1] to
            ``(N, D)``, used instead of the FID Inception (tests, other feature spaces); then give
            ``feature_dim`` and an ``extractor_id`` to record.
        batch_size: images per forward pass.
        cache_dir / offline: weights-store options.
    """

    scorer_id = "fid"
    metrics = ("fid",)
    VERSION = "1.0.0"

    def __init__(
        self,
        *,
        weights: str | os.PathLike[str] | None = None,
        extractor: Callable[[Any], Any] | None = None,
        extractor_id: str = "custom",
        feature_dim: int | None = None,
        batch_size: int = 32,
        cache_dir: str | os.PathLike[str] | None = None,
        offline: bool | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, cache_dir=cache_dir, offline=offline)
        if extractor is not None and (feature_dim is None or weights is not None):
            raise ConfigError("FidScorer: with extractor=..., give feature_dim and no weights")
        self.weights_path = weights
        self.extractor = extractor
        self.extractor_id = extractor_id
        self._feature_dim = feature_dim
        self._net: Any = None
        self._file: Any = None

    @property
    def weight_ids(self) -> tuple[str, ...]:
        return () if self.extractor is not None or self.weights_path is not None else (FID_INCEPTION_ID,)

    def _resolve(self) -> ScorerCard:
        if self.extractor is not None:
            model, weights, dim = f"custom:{self.extractor_id}", ((f"custom:{self.extractor_id}", ""),), self._feature_dim
        else:
            self._file, sha = resolve_weight_file(FID_INCEPTION_ID, _FID_FILE, self.weights_path,
                                                  cache_dir=self.cache_dir, offline=self.offline)
            model, weights, dim = "FID Inception v3 (TF 2015-12-05, pytorch-fid port) pool3", ((f"{FID_INCEPTION_ID}/{_FID_FILE}", sha),), 2048
        return ScorerCard(
            id=self.scorer_id,
            version=self.VERSION,
            metrics=self.metrics,
            model=model,
            weights=weights,
            preprocess=f"shorter side {FID_INPUT_SIZE} PIL bilinear, centre crop {FID_INPUT_SIZE}, x/255*2-1 (once)",
            preprocess_version=f"fid-bilinear-crop{FID_INPUT_SIZE}-pm1-v1",
            dtype="float32",
            feature_dim=int(dim or 0),
        )

    def _build(self, device: str) -> None:
        if self.extractor is not None:
            net = self.extractor
        else:
            from multiid_bench.scorers._fid_inception import load_fid_inception

            net = load_fid_inception(str(self._file))
        if hasattr(net, "to"):
            net = net.to(device)
        if hasattr(net, "eval"):
            net.eval()
        self._net = net

    def _pixels(self, image: "Image.Image") -> "torch.Tensor":
        return fid_pixels(image)

    def _forward(self, batch: "torch.Tensor") -> "torch.Tensor":
        out = self._net(batch)
        return out.reshape(out.shape[0], -1)
