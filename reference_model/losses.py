"""WithAnyone training losses: flow matching, one-step x̂, GT-aligned ID loss, extended-negative InfoNCE.

Conventions (spec §3, paper Sec. 5.1 and App. E.1):

* ``sigma`` is always the **noise level fed to the FLUX transformer** (1 = pure noise, 0 = clean data), and
  the transformer always predicts ``noise − data`` (that is how FLUX was trained). Every function that takes
  a time ``t`` also takes a ``convention``:

  - ``"paper"`` (Sec. 5.1): ``x_t = (1 − t)·x0 + t·x1`` with ``x0`` noise, target ``x1 − x0``; ``t = 1 − sigma``
    and ``v_paper = −v_flux``. The default t sampling is ``t ~ U(0, 1)``.
  - ``"official"`` (released code, App. E.1): ``x_t = (1 − t)·x1 + t·x0``, target ``x0 − x1``; ``t = sigma``.
    Its t sampling is the shifted 1000-point grid (``t_sampling="shifted"``).

  Both conventions describe the same process, so for one noise draw and one noise level the loss value and
  x̂ are identical; what differs is how t is named and, by default, how it is sampled.
* Images entering the identity losses are float tensors in **[−1, 1]** (what the VAE decodes to). The loss
  ArcFace takes ``(p − 127.5) / 127.5`` of 0–255 pixels, which *is* the [−1, 1] image, so both the prediction
  and the ground truth go in unchanged. The released code fed the [−1, 1] GT image into a 0–255 path (spec
  §6.2.1); :func:`check_unit_range` refuses a 0–255 tensor so that bug cannot come back silently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from multiid_bench.errors import BadInputError, ConfigError

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "Convention",
    "FlowSample",
    "IdLossOutput",
    "TSampling",
    "align_faces_differentiable",
    "check_unit_range",
    "detect_prediction_landmarks",
    "flow_matching_loss",
    "prediction_aligned_id_loss",
    "flux_mu",
    "gt_aligned_id_loss",
    "identity_gate",
    "info_nce_extended",
    "make_flow_sample",
    "match_landmarks_to_boxes",
    "pack_latents",
    "predict_clean",
    "sample_sigmas",
    "time_shift",
    "unpack_latents",
]

Convention = Literal["paper", "official"]
TSampling = Literal["uniform", "shifted"]
CONVENTIONS: tuple[str, ...] = ("paper", "official")
T_SAMPLINGS: tuple[str, ...] = ("uniform", "shifted")

# insightface's 5-point ArcFace template for 112×112 crops (left eye, right eye, nose, left/right mouth),
# pixel-centre coordinates (cv2.warpAffine convention).
ARCFACE_TEMPLATE_112: tuple[tuple[float, float], ...] = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ConfigError(f"flow-matching convention {convention!r} is not one of {CONVENTIONS}")


# --------------------------------------------------------------------------------------------------
# Flow matching
# --------------------------------------------------------------------------------------------------
def flux_mu(seq_len: int, *, base_len: int = 256, max_len: int = 4096, base_shift: float = 0.5,
            max_shift: float = 1.15) -> float:
    """FLUX's resolution-dependent shift μ: linear in the token count through (256, 0.5) and (4096, 1.15)."""
    slope = (max_shift - base_shift) / (max_len - base_len)
    return base_shift + slope * (seq_len - base_len)


def time_shift(mu: float, t: torch.Tensor) -> torch.Tensor:
    """``e^μ / (e^μ + 1/t − 1)`` (0 maps to 0, 1 to 1); written as ``e^μ t / (e^μ t + 1 − t)`` to allow t = 0."""
    e = math.exp(mu)
    return e * t / (e * t + 1.0 - t)


def sample_sigmas(n: int, *, sampling: TSampling = "uniform", seq_len: int = 1024,
                  generator: torch.Generator | None = None, device: str | torch.device = "cpu") -> torch.Tensor:
    """Draw ``n`` noise levels σ ∈ [0, 1] (float32).

    ``"uniform"``: σ ~ U(0, 1) (paper: t ~ U(0, 1), and σ = 1 − t is uniform too). ``"shifted"``: the released
    trainer's rule, a uniform index into ``shift(linspace(1, 0, 1000))`` with μ from the true token count
    ``seq_len`` (1024 at 512², μ = 0.63; endpoints included).
    """
    import torch

    if sampling == "uniform":
        return torch.rand(n, generator=generator).to(device)
    if sampling == "shifted":
        grid = time_shift(flux_mu(seq_len), torch.linspace(1.0, 0.0, 1000, dtype=torch.float64)).float()
        idx = torch.randint(0, 1000, (n,), generator=generator)
        return grid[idx].to(device)
    raise ConfigError(f"t sampling {sampling!r} is not one of {T_SAMPLINGS}")


@dataclass(frozen=True)
class FlowSample:
    """One flow-matching draw: the transformer input ``x_t`` at noise level ``sigma`` and the regression target.

    ``t`` and ``target`` are in the chosen ``convention``; ``sigma`` (B,) is what the transformer receives.
    """

    x_t: torch.Tensor
    sigma: torch.Tensor
    t: torch.Tensor
    target: torch.Tensor
    convention: str


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape[0], *([1] * (like.ndim - 1))).to(like.dtype)


def make_flow_sample(x1: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor, *,
                     convention: Convention = "paper") -> FlowSample:
    """Interpolate clean latents ``x1`` and ``noise`` at noise level ``sigma`` (B,).

    ``x_t = σ·noise + (1 − σ)·x1`` in both conventions; target = ``x1 − noise`` (paper) or ``noise − x1``
    (official).
    """
    _check_convention(convention)
    if x1.shape != noise.shape:
        raise BadInputError(f"flow matching: latents {tuple(x1.shape)} and noise {tuple(noise.shape)} differ")
    s = _bcast(sigma, x1)
    x_t = s * noise + (1.0 - s) * x1
    if convention == "paper":
        return FlowSample(x_t, sigma, 1.0 - sigma, x1 - noise, convention)
    return FlowSample(x_t, sigma, sigma, noise - x1, convention)


def to_convention(v_flux: torch.Tensor, convention: Convention) -> torch.Tensor:
    """The transformer's output (``noise − data``) expressed in ``convention`` (sign flip for the paper's)."""
    _check_convention(convention)
    return -v_flux if convention == "paper" else v_flux


def flow_matching_loss(v_pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample ``mean((v̂ − target)²)`` over every token and channel, shape (B,); no weighting (spec §3.1)."""
    if v_pred.shape != target.shape:
        raise BadInputError(f"flow matching: prediction {tuple(v_pred.shape)} vs target {tuple(target.shape)}")
    diff = (v_pred.float() - target.float()) ** 2
    return diff.reshape(diff.shape[0], -1).mean(dim=1)


def predict_clean(x_t: torch.Tensor, v_pred: torch.Tensor, t: torch.Tensor, *,
                  convention: Convention = "paper") -> torch.Tensor:
    """One-step clean estimate x̂ (App. E.1 eq. 11): ``x_t − t·v̂`` (official), ``x_t + (1 − t)·v̂`` (paper).

    Differentiable in ``v_pred``; exact (x̂ = x1) when v̂ equals the target.
    """
    _check_convention(convention)
    tt = _bcast(t, x_t)
    if convention == "official":
        return x_t - tt * v_pred
    return x_t + (1.0 - tt) * v_pred


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) → (B, h/2·w/2, 4C), row-major tokens, channel order (c, ph, pw) (= diffusers' packing)."""
    b, c, h, w = latents.shape
    x = latents.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack_latents(tokens: torch.Tensor, height: int, width: int, *, vae_scale_factor: int = 8) -> torch.Tensor:
    """Inverse of :func:`pack_latents` for an image of ``height × width`` pixels."""
    b, n, d = tokens.shape
    h, w = 2 * (height // (vae_scale_factor * 2)), 2 * (width // (vae_scale_factor * 2))
    if n != (h // 2) * (w // 2):
        raise BadInputError(f"unpack: {n} tokens do not tile a {height}×{width} image ({h // 2}×{w // 2} expected)")
    x = tokens.reshape(b, h // 2, w // 2, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, d // 4, h, w)


def identity_gate(sigma: torch.Tensor, threshold: float | None, *,
                  mode: Literal["per_sample", "batch_first"] = "per_sample", off_weight: float = 1e-5) -> torch.Tensor:
    """Weights (B,) for the identity losses: 1 by default (paper: all noise levels).

    With ``threshold`` set (official: 0.6 on the noise level), samples above it get ``off_weight`` (1e−5)
    and the rest ``1 − off_weight``; ``"batch_first"`` reproduces the released code, where the first
    sample's σ decides for the whole batch.
    """
    import torch

    if threshold is None:
        return torch.ones_like(sigma, dtype=torch.float32)
    high = sigma > threshold
    if mode == "batch_first":
        high = high[:1].expand_as(high)
    elif mode != "per_sample":
        raise ConfigError(f"identity gate mode {mode!r} is not 'per_sample' or 'batch_first'")
    on = torch.full_like(sigma, 1.0 - off_weight, dtype=torch.float32)
    return torch.where(high, torch.full_like(on, off_weight), on)


# --------------------------------------------------------------------------------------------------
# GT landmarks → differentiable alignment → ArcFace → 1 − cos
# --------------------------------------------------------------------------------------------------
def match_landmarks_to_boxes(det_boxes: np.ndarray, det_landmarks: np.ndarray, boxes: np.ndarray, *,
                             min_iou: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Give each dataset box the landmarks of the detection that overlaps it (Hungarian on IoU).

    The released trainer kept the detector's confidence order and duplicated a single detection for both
    faces (spec §6.2.2), so query and positive could belong to different people. Here face ``i`` always
    means dataset box ``i``; a box without a detection at IoU ≥ ``min_iou`` is marked invalid.

    Args:
        det_boxes: (K, 4) detections on the GT image, any order. det_landmarks: (K, 5, 2).
        boxes: (N, 4) dataset face boxes in the same pixel frame.
    Returns:
        landmarks (N, 5, 2) float32 (zeros where invalid) and valid (N,) bool.
    """
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.zeros((len(boxes), 5, 2), np.float32)
    valid = np.zeros(len(boxes), bool)
    det_boxes = np.asarray(det_boxes, np.float64).reshape(-1, 4)
    if len(det_boxes) == 0 or len(boxes) == 0:
        return out, valid
    det_landmarks = np.asarray(det_landmarks, np.float32).reshape(len(det_boxes), 5, 2)
    from multiid_bench.faces.types import box_iou

    iou = box_iou(boxes, det_boxes)
    rows, cols = linear_sum_assignment(-iou)
    for r, c in zip(rows, cols):
        if iou[r, c] >= min_iou:
            out[r] = det_landmarks[c]
            valid[r] = True
    return out, valid


def check_unit_range(images: torch.Tensor, name: str, *, bound: float = 1.0 + 1e-3) -> None:
    """Refuse an image that is not a float tensor within [−bound, bound] (the released GT-range bug, §6.2.1).

    Used on the ground-truth image, which comes from data and is exactly in [−1, 1]; the decoded one-step
    prediction is not clamped (as in the released code), so it is only checked for being floating point.
    """
    if not images.is_floating_point():
        raise BadInputError(f"{name}: expected a float image in [-1, 1], got dtype {images.dtype}; "
                            "convert uint8 with x / 127.5 - 1")
    peak = float(images.detach().abs().max()) if images.numel() else 0.0
    if peak > bound:
        raise BadInputError(f"{name}: values reach {peak:.3g}, outside [-1, 1] (0-255 pixels?); the identity "
                            "losses take [-1, 1] images (convert with x / 127.5 - 1)")


def _similarity_inverse(landmarks: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity landmarks → template (as insightface estimates it), returned inverted.

    2-D similarity fit in complex form: ``z = Σ conj(a)·b / Σ|a|²`` on centred points (= Umeyama without
    reflection). Returns (M, 2, 3) mapping template (output) pixels to image (input) pixels.
    """
    import torch

    a = torch.complex(landmarks[..., 0], landmarks[..., 1])  # (M, 5)
    b = torch.complex(template[..., 0], template[..., 1]).expand_as(a)
    ac, bc = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    z = (ac.conj() * bc).sum(-1) / (ac.abs() ** 2).sum(-1).clamp_min(1e-12)
    w = b.mean(-1) - z * a.mean(-1)
    zi, wi = 1.0 / z, -w / z  # inverse: image = zi·template + wi
    m = torch.stack([torch.stack([zi.real, -zi.imag, wi.real], -1),
                     torch.stack([zi.imag, zi.real, wi.imag], -1)], -2)
    return m


def _affine_inverse(landmarks: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Least-squares full affine template → landmarks (6 DoF, the released loss's choice), (M, 2, 3)."""
    import torch

    ones = torch.ones(*template.shape[:-1], 1, dtype=template.dtype)
    src = torch.cat([template, ones], -1).expand(landmarks.shape[0], -1, -1)  # (M, 5, 3)
    sol = torch.linalg.lstsq(src, landmarks).solution  # (M, 3, 2)
    return sol.transpose(1, 2)


def align_faces_differentiable(images: torch.Tensor, landmarks: torch.Tensor, *, size: int = 112,
                               transform: Literal["similarity", "affine"] = "similarity",
                               mode: str = "bilinear") -> torch.Tensor:
    """Warp faces onto the ArcFace template with ``grid_sample``; gradients flow to the pixels only.

    Args:
        images: (B, C, H, W) float. landmarks: (B, N, 5, 2) pixel-centre coordinates in ``images``.
        transform: ``"similarity"`` (insightface's alignment, what ArcFace was trained on; default) or
            ``"affine"`` (the released loss's full affine fit).
    Returns:
        (B, N, C, size, size); outside the image is zero.
    """
    import torch
    import torch.nn.functional as F

    b, c, h, w = images.shape
    n = landmarks.shape[1]
    tmpl = torch.tensor(ARCFACE_TEMPLATE_112, dtype=torch.float64) * (size / 112.0)
    lm = landmarks.detach().to(torch.float64).reshape(b * n, 5, 2).cpu()
    if transform == "similarity":
        m = _similarity_inverse(lm, tmpl)
    elif transform == "affine":
        m = _affine_inverse(lm, tmpl)
    else:
        raise ConfigError(f"alignment transform {transform!r} is not 'similarity' or 'affine'")
    # normalised output coords u -> output pixel p = ((u + 1)·size − 1)/2; input pixel -> (2x + 1)/W − 1
    out_from_norm = torch.tensor([[size / 2, 0, (size - 1) / 2], [0, size / 2, (size - 1) / 2], [0, 0, 1]],
                                 dtype=torch.float64)
    norm_from_in = torch.tensor([[2 / w, 0, 1 / w - 1], [0, 2 / h, 1 / h - 1], [0, 0, 1]], dtype=torch.float64)
    m3 = torch.cat([m, torch.tensor([[[0.0, 0.0, 1.0]]], dtype=torch.float64).expand(b * n, 1, 3)], 1)
    theta = (norm_from_in @ m3 @ out_from_norm)[:, :2, :].to(images.dtype).to(images.device)
    grid = F.affine_grid(theta, [b * n, c, size, size], align_corners=False)
    src = images.unsqueeze(1).expand(b, n, c, h, w).reshape(b * n, c, h, w)
    crops = F.grid_sample(src, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return crops.reshape(b, n, c, size, size)


@dataclass(frozen=True)
class IdLossOutput:
    """Per-face results of the GT-aligned ID loss.

    ``loss`` (B, N) = 1 − cos(g, t) (0 where invalid); ``query`` (B, N, D) the differentiable embeddings
    of the prediction (the InfoNCE queries); ``target`` (B, N, D) the GT-side embeddings (no gradient);
    ``valid`` (B, N) bool.
    """

    loss: torch.Tensor
    query: torch.Tensor
    target: torch.Tensor
    valid: torch.Tensor


def gt_aligned_id_loss(arcface: torch.nn.Module, pred_images: torch.Tensor, gt_images: torch.Tensor,
                       landmarks: torch.Tensor, valid: torch.Tensor, *, size: int = 112,
                       transform: Literal["similarity", "affine"] = "similarity",
                       pred_landmarks: torch.Tensor | None = None) -> IdLossOutput:
    """GT-aligned ID loss (paper eq. 14): ``1 − cos(f(g(T), G), f(g(T), T))`` per face.

    Both images are [−1, 1] (B, 3, H, W) RGB; they are aligned with the *same* GT landmarks (B, N, 5, 2),
    embedded by the frozen ``arcface`` (input = aligned [−1, 1] crops), and compared face by face in the
    dataset's box order. Computed in fp32. ``pred_landmarks``: align the prediction with these instead
    (``prediction_aligned_id_loss``).
    """
    import torch
    import torch.nn.functional as F

    check_unit_range(pred_images, "predicted image", bound=float("inf"))
    check_unit_range(gt_images, "ground-truth image")
    if pred_images.shape != gt_images.shape:
        raise BadInputError(f"ID loss: prediction {tuple(pred_images.shape)} vs GT {tuple(gt_images.shape)}")
    b, n = landmarks.shape[:2]
    lm = torch.where(valid[..., None, None], landmarks,
                     torch.tensor(ARCFACE_TEMPLATE_112, dtype=landmarks.dtype, device=landmarks.device)
                     * (pred_images.shape[-1] / 112.0))
    pred_lm = lm if pred_landmarks is None else torch.where(valid[..., None, None], pred_landmarks, lm)
    pred_crops = align_faces_differentiable(pred_images.float(), pred_lm, size=size, transform=transform)
    with torch.no_grad():
        gt_crops = align_faces_differentiable(gt_images.float(), lm, size=size, transform=transform)
        target = arcface(gt_crops.reshape(b * n, *gt_crops.shape[2:])).float().reshape(b, n, -1)
    query = arcface(pred_crops.reshape(b * n, *pred_crops.shape[2:])).float().reshape(b, n, -1)
    cos = F.cosine_similarity(query, target, dim=-1, eps=1e-8)
    loss = torch.where(valid, 1.0 - cos, torch.zeros_like(cos))
    return IdLossOutput(loss, query, target, valid)


def prediction_aligned_id_loss(arcface: torch.nn.Module, pred_images: torch.Tensor, gt_images: torch.Tensor,
                               landmarks: torch.Tensor, valid: torch.Tensor, pred_landmarks: torch.Tensor,
                               pred_valid: torch.Tensor, *, size: int = 112,
                               transform: Literal["similarity", "affine"] = "similarity") -> IdLossOutput:
    """Prediction-aligned ID loss (the paper's ablation, Fig. 7; released variant A, spec §3.3): the generated
    image is aligned with landmarks *detected on the prediction* (``pred_landmarks``, no gradient), the GT
    side as in ``gt_aligned_id_loss``. A face the detector missed on the prediction (``pred_valid`` False) is
    left out of the loss (released: template landmarks and the whole identity loss x1e-5)."""
    return gt_aligned_id_loss(arcface, pred_images, gt_images, landmarks, valid & pred_valid, size=size,
                              transform=transform, pred_landmarks=pred_landmarks)


def detect_prediction_landmarks(detector: Any, pred_images: torch.Tensor, boxes: torch.Tensor, *,
                                min_iou: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``detector`` (image uint8 HWC -> (boxes (K, 4), landmarks (K, 5, 2))) on each decoded prediction
    ([-1, 1], (B, 3, H, W)) and give dataset box i the landmarks of the detection matched to it by IoU."""
    import numpy as np
    import torch

    lms, oks = [], []
    with torch.no_grad():
        pixels = ((pred_images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        for img, bx in zip(pixels.permute(0, 2, 3, 1).cpu().numpy(), boxes.detach().cpu().numpy()):
            det_boxes, det_lm = detector(img)
            lm, ok = match_landmarks_to_boxes(np.asarray(det_boxes), np.asarray(det_lm), bx, min_iou=min_iou)
            lms.append(torch.from_numpy(np.asarray(lm, np.float32)))
            oks.append(torch.from_numpy(np.asarray(ok, bool)))
    return torch.stack(lms).to(pred_images.device), torch.stack(oks).to(pred_images.device)


# --------------------------------------------------------------------------------------------------
# InfoNCE with extended negatives
# --------------------------------------------------------------------------------------------------
def info_nce_extended(queries: torch.Tensor, positives: torch.Tensor, identity: torch.Tensor, *,
                      bank_negatives: torch.Tensor | None = None, tau: float = 0.1,
                      in_batch: bool = True) -> torch.Tensor:
    """Per-query InfoNCE (paper eq. 5) with in-batch and reference-bank negatives, in fp32.

    ``L_i = −log( e^{cos(q_i, p_i)/τ} / (e^{cos(q_i, p_i)/τ} + Σ_j e^{cos(q_i, n_ij)/τ}) )`` where the
    negatives ``n_ij`` are (a) every other positive in the (gathered) batch whose identity differs from
    query i's (same-identity entries are dropped; unknown identities carry unique negative ids), and
    (b) ``bank_negatives[i]`` (K, D), drawn from bank identities other than i's own. The positive sits in
    the denominator, as in the library the released code used (cross-entropy with the positive in slot 0).

    Args:
        queries: (M, D) embeddings of the generated faces (differentiable).
        positives: (M, D) target embeddings, row i is query i's positive.
        identity: (M,) int64 identity ids of the rows.
        bank_negatives: (M, K, D) or None.
    Returns:
        (M,) float32 losses.
    """
    import torch
    import torch.nn.functional as F

    if tau <= 0:
        raise ConfigError(f"InfoNCE temperature must be > 0, got {tau}")
    q = F.normalize(queries.float(), dim=-1)
    p = F.normalize(positives.float(), dim=-1)
    pos = (q * p).sum(-1, keepdim=True) / tau  # (M, 1)
    parts = [pos]
    if in_batch:
        logits = q @ p.T / tau  # (M, M)
        same = identity[:, None] == identity[None, :]
        parts.append(logits.masked_fill(same, float("-inf")))
    if bank_negatives is not None:
        nb = F.normalize(bank_negatives.float(), dim=-1)
        parts.append(torch.einsum("md,mkd->mk", q, nb) / tau)
    all_logits = torch.cat(parts, dim=1)
    return torch.logsumexp(all_logits, dim=1) - pos[:, 0]
