"""Identity metrics on face embeddings: cosine, Hungarian matching, Sim(GT/Ref), copy-paste, blending.

Pure numpy: no torch, no files, no images. Everything here takes embedding arrays of shape ``(N, D)``
(any norm: cosines normalise) and returns plain floats or arrays.

Paper equations (WithAnyone, Sec. 4 and App. D):

* eq. 1  ``cos(a, b) = <a, b> / (|a| |b|)`` and ``theta(a, b) = arccos(clip(cos(a, b), -1, 1))``
* eq. 2  ``M_CP(g | t, r) = (theta(g, t) - theta(g, r)) / max(theta(t, r), eps)``, written as
  ``0`` when ``theta(t, r) < eps`` (the official rule), in ``[-1, 1]`` by the spherical triangle
  inequality. ``+1``: the generated face is the reference; ``-1``: it is the ground truth.
* eq. 8  blending = mean similarity of the face pairs the assignment did *not* match.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np
import numpy.typing as npt

__all__ = [
    "IdentityScores",
    "compute_copy_paste",
    "cosine_matrix",
    "identity_scores",
    "match_faces",
]

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

#: ``torch.nn.functional.cosine_similarity``'s default: norms below it are clamped, so a zero
#: vector has cosine 0 with everything (the official evaluation computes Sim with that function).
_COSINE_EPS = 1e-8
#: Rows per float64 chunk in :func:`compute_copy_paste`: small enough to stay in cache (converting
#: whole float32 arrays to float64 at once costs more than the arithmetic), large enough to vectorise.
_CHUNK = 4096
#: The exact path converts each chunk to float64; 256 rows of 512-d keep those copies in cache.
_CHUNK_EXACT = 256


def _as_2d(x: ArrayLike, name: str) -> FloatArray:
    """Validate one image's face embeddings as ``(N, D)`` float64; ``N`` may be 0."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 0)
    if arr.ndim != 2:
        raise ValueError(
            f"{name}: expected face embeddings of shape (N, D), one row per face; got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: embeddings contain NaN or inf; the face model produced garbage")
    return arr


def _normalise(x: FloatArray, norm_eps: float) -> FloatArray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if norm_eps > 0.0:
        return x / (norms + norm_eps)
    return x / np.maximum(norms, _COSINE_EPS)


def cosine_matrix(a: ArrayLike, b: ArrayLike) -> FloatArray:
    """Exact cosine similarity of every row of ``a`` with every row of ``b``.

    Args:
        a: ``(N, D)`` embeddings. b: ``(M, D)`` embeddings. Either may have zero rows.

    Returns:
        ``(N, M)`` float64 matrix; a zero vector has cosine 0 with everything.

    Example:
        >>> cosine_matrix([[1.0, 0.0], [1.0, 1.0]], [[2.0, 0.0]]).round(4).tolist()
        [[1.0], [0.7071]]
    """
    a2, b2 = _as_2d(a, "a"), _as_2d(b, "b")
    if a2.shape[0] == 0 or b2.shape[0] == 0:
        return np.zeros((a2.shape[0], b2.shape[0]), dtype=np.float64)
    if a2.shape[1] != b2.shape[1]:
        raise ValueError(f"embedding sizes differ: a has D={a2.shape[1]}, b has D={b2.shape[1]}")
    return _normalise(a2, 0.0) @ _normalise(b2, 0.0).T


def match_faces(sim: ArrayLike) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Hungarian assignment that maximises the total similarity (rectangular allowed).

    Returns ``(rows, cols)`` with ``min(N, M)`` pairs, rows ascending (scipy's order).

    Example:
        >>> r, c = match_faces([[0.1, 0.9], [0.8, 0.2]])
        >>> list(zip(r.tolist(), c.tolist()))
        [(0, 1), (1, 0)]
    """
    s = np.asarray(sim, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"similarity matrix must be 2-D, got shape {s.shape}")
    if s.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty.copy()
    from scipy.optimize import linear_sum_assignment  # only here: importing scipy costs ~0.1 s at startup

    rows, cols = linear_sum_assignment(-s)
    return rows.astype(np.intp), cols.astype(np.intp)


def _rowdot(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> FloatArray:
    return np.einsum("ij,ij->i", a, b).astype(np.float64, copy=False)


#: Above this |cos| an angle is ill-conditioned (d theta = d cos / sin theta): the official path
#: redoes float32 dot products in float64 there, the exact path takes the angle from chord lengths.
_REFINE_ABOVE = 0.99


def _official_rows(g: npt.NDArray[np.floating], t: npt.NDArray[np.floating], r: npt.NDArray[np.floating],
                   eps: float, norm_eps: float) -> FloatArray:
    """The official ``x / (|x| + norm_eps)`` normalisation, then clipped arccos of the dot products.

    Works on the six dot products instead of normalised copies of the vectors: the same cosines for
    a third of the memory traffic. float32 rows accumulate in float32 and are recomputed in float64
    wherever a cosine is near +-1 (see ``_REFINE_ABOVE``). Kept unchanged so that ``paper`` numbers
    do not move between releases.
    """
    gg, tt, rr = _rowdot(g, g), _rowdot(t, t), _rowdot(r, r)
    gt, gr, tr = _rowdot(g, t), _rowdot(g, r), _rowdot(t, r)
    ng, nt, nr = np.sqrt(gg) + norm_eps, np.sqrt(tt) + norm_eps, np.sqrt(rr) + norm_eps
    c_gt, c_gr, c_tr = gt / (ng * nt), gr / (ng * nr), tr / (nt * nr)
    if g.dtype != np.float64:
        near = (np.abs(c_gt) > _REFINE_ABOVE) | (np.abs(c_gr) > _REFINE_ABOVE) | (np.abs(c_tr) > _REFINE_ABOVE)
        if near.any():
            score = _official_rows(g.astype(np.float64), t.astype(np.float64), r.astype(np.float64), eps, norm_eps)
            rest = _copy_paste_rows_from_cos(c_gt, c_gr, c_tr, eps)
            return np.where(near, score, rest)
    return _copy_paste_rows_from_cos(c_gt, c_gr, c_tr, eps)


def _unit(x: FloatArray) -> FloatArray:
    return x / np.maximum(np.sqrt(_rowdot(x, x)), _COSINE_EPS)[:, None]


def _stable_angle(a: FloatArray, b: FloatArray) -> FloatArray:
    """``theta = 2 atan2(|a - b|, |a + b|)`` for unit rows: accurate to a few ulp at every angle.

    ``arccos(cos)`` loses half the digits near 0 and pi (``d theta = d cos / sin theta``: a cosine
    rounded to 1e-16 gives an angle wrong by 1e-8); the chord lengths keep full relative precision.
    """
    d, s = a - b, a + b
    return 2.0 * np.arctan2(np.sqrt(_rowdot(d, d)), np.sqrt(_rowdot(s, s)))


def _exact_rows(g: npt.NDArray[np.floating], t: npt.NDArray[np.floating], r: npt.NDArray[np.floating],
                eps: float) -> FloatArray:
    """Exact eq. 2, accurate to ~1e-10 for every input with ``theta(t, r) >= eps``.

    Dot products in float64 (float32 accumulation alone errs by ~1e-6 in M_CP). Where a cosine is far
    from +-1 its arccos is well conditioned; rows with any ``|cos| > _REFINE_ABOVE`` (near-copies,
    near-identical GT and reference) take all three angles from :func:`_stable_angle` instead.
    An exact copy (``g`` bitwise equal to ``t``) gives ``theta = 0`` exactly, hence exactly -1.
    """
    g64, t64, r64 = (np.asarray(x, dtype=np.float64) for x in (g, t, r))
    gg, tt, rr = _rowdot(g64, g64), _rowdot(t64, t64), _rowdot(r64, r64)
    gt, gr, tr = _rowdot(g64, t64), _rowdot(g64, r64), _rowdot(t64, r64)
    floor = _COSINE_EPS * _COSINE_EPS
    gg_, tt_, rr_ = np.maximum(gg, floor), np.maximum(tt, floor), np.maximum(rr, floor)
    c_gt, c_gr, c_tr = gt / np.sqrt(gg_ * tt_), gr / np.sqrt(gg_ * rr_), tr / np.sqrt(tt_ * rr_)
    theta_gt = np.arccos(np.clip(c_gt, -1.0, 1.0))
    theta_gr = np.arccos(np.clip(c_gr, -1.0, 1.0))
    theta_tr = np.arccos(np.clip(c_tr, -1.0, 1.0))
    near = (np.abs(c_gt) > _REFINE_ABOVE) | (np.abs(c_gr) > _REFINE_ABOVE) | (np.abs(c_tr) > _REFINE_ABOVE)
    if near.any():
        ug, ut, ur = _unit(g64[near]), _unit(t64[near]), _unit(r64[near])
        theta_gt[near] = _stable_angle(ug, ut)
        theta_gr[near] = _stable_angle(ug, ur)
        theta_tr[near] = _stable_angle(ut, ur)
    return _score_from_angles(theta_gt, theta_gr, theta_tr, eps)


def _copy_paste_rows_from_cos(c_gt: FloatArray, c_gr: FloatArray, c_tr: FloatArray, eps: float) -> FloatArray:
    theta_gt = np.arccos(np.clip(c_gt, -1.0, 1.0))
    theta_gr = np.arccos(np.clip(c_gr, -1.0, 1.0))
    theta_tr = np.arccos(np.clip(c_tr, -1.0, 1.0))
    return _score_from_angles(theta_gt, theta_gr, theta_tr, eps)


def _score_from_angles(theta_gt: FloatArray, theta_gr: FloatArray, theta_tr: FloatArray, eps: float) -> FloatArray:
    degenerate = theta_tr < eps
    safe = np.where(degenerate, 1.0, theta_tr)
    score = np.where(degenerate, 0.0, (theta_gt - theta_gr) / safe)
    # Exact unit vectors keep this in [-1, 1] (triangle inequality); (|x| + eps) scaling and
    # rounding can step past it by ~1e-16, so the documented range is enforced.
    return np.clip(score, -1.0, 1.0)


def compute_copy_paste(
    g: ArrayLike, t: ArrayLike, r: ArrayLike, eps: float = 1e-6, norm_eps: float = 0.0
) -> Union[float, FloatArray]:
    """Angular copy-paste score M_CP (paper eq. 2) of generated face ``g`` against GT ``t`` and reference ``r``.

    ``M_CP = (theta(g, t) - theta(g, r)) / theta(t, r)`` with ``theta = arccos(clip(cos, -1, 1))`` in
    radians, and ``0`` when ``theta(t, r) < eps``. Computed in float64 and clipped to ``[-1, 1]``.

    With ``norm_eps=0`` the result is accurate to 1e-9 for every input (tested against 50-digit
    arithmetic), including GT and reference a few microradians apart: near-parallel pairs take their
    angle from ``2 atan2(|a^ - b^|, |a^ + b^|)``, which does not lose digits the way ``arccos`` of a
    rounded cosine does near +-1. ``norm_eps > 0`` reproduces the official script's numerics.

    Args:
        g, t, r: embeddings of shape ``(..., D)``; leading shapes broadcast. Need not be normalised.
        eps: angle (radians) below which GT and reference count as the same face and the score is 0.
        norm_eps: ``0`` (default) divides by the exact norm. ``1e-6`` divides by ``|x| + 1e-6`` as
            the official script does (the ``paper`` protocol): an exact copy then scores about
            ``+-0.9996`` instead of ``+-1`` with raw ArcFace norms near 25.

    Returns:
        A Python ``float`` for 1-D inputs, else an array of the broadcast leading shape.

    Raises:
        ValueError: shapes that do not broadcast, or embeddings of different dimension.

    Example:
        >>> compute_copy_paste([1.0, 0.0], [1.0, 0.0], [0.0, 1.0])
        -1.0
        >>> compute_copy_paste([0.0, 1.0], [1.0, 0.0], [0.0, 1.0])
        1.0
        >>> round(compute_copy_paste([1.0, 1.0], [1.0, 0.0], [0.0, 1.0]), 12)
        0.0
    """
    if eps < 0 or norm_eps < 0:
        raise ValueError(f"eps and norm_eps must be >= 0, got eps={eps}, norm_eps={norm_eps}")
    ga, ta, ra = (np.asarray(x) for x in (g, t, r))
    for name, arr in (("g", ga), ("t", ta), ("r", ra)):
        if arr.ndim == 0:
            raise ValueError(f"{name}: expected an embedding of shape (..., D), got a scalar")
    if not (ga.shape[-1] == ta.shape[-1] == ra.shape[-1]):
        raise ValueError(f"embedding sizes differ: g {ga.shape}, t {ta.shape}, r {ra.shape}")
    dim = ga.shape[-1]
    lead = np.broadcast_shapes(ga.shape[:-1], ta.shape[:-1], ra.shape[:-1])
    scalar = not lead
    lead = lead or (1,)
    gb, tb, rb = (np.broadcast_to(x, lead + (dim,)).reshape(-1, dim) for x in (ga, ta, ra))
    out = np.empty(gb.shape[0], dtype=np.float64)
    if norm_eps == 0.0:
        # exact: float64 rows, copied chunk by chunk into buffers allocated once (a fresh array per
        # chunk costs page faults that dominate the arithmetic)
        rows = min(_CHUNK_EXACT, gb.shape[0])
        bufs = [np.empty((rows, dim), dtype=np.float64) for _ in range(3)]
        for start in range(0, gb.shape[0], rows):
            sl = slice(start, start + rows)
            views = []
            for buf, src in zip(bufs, (gb, tb, rb)):
                part = src[sl]
                np.copyto(buf[: part.shape[0]], part, casting="unsafe")
                views.append(buf[: part.shape[0]])
            out[sl] = _exact_rows(views[0], views[1], views[2], eps)
        return float(out[0]) if scalar else out.reshape(lead)
    # official: float32 stays float32 (converting whole arrays costs more than the arithmetic)
    work = np.float32 if ga.dtype == ta.dtype == ra.dtype == np.float32 else np.float64
    for start in range(0, gb.shape[0], _CHUNK):
        sl = slice(start, start + _CHUNK)
        out[sl] = _official_rows(
            gb[sl].astype(work, copy=False), tb[sl].astype(work, copy=False), rb[sl].astype(work, copy=False),
            eps,
            norm_eps,
        )
    return float(out[0]) if scalar else out.reshape(lead)


@dataclass(frozen=True)
class IdentityScores:
    """One case, one face model. ``None`` means "not defined for this case", never 0.

    Attributes:
        sim_gt: mean cosine over Hungarian-matched (generated, GT) face pairs.
        sim_ref: same against the reference faces.
        copy_paste: mean M_CP over generated faces; only when #gen == #GT == #ref > 0.
        blend_gt / blend_ref: mean cosine of the pairs the assignment did not match.
        gt_pairs / ref_pairs: matched ``(generated index, GT or reference index)`` pairs.
        sim_gt_per_face / sim_ref_per_face / copy_paste_per_face: per matched pair, same order.
    """

    sim_gt: float | None
    sim_ref: float | None
    copy_paste: float | None
    blend_gt: float | None
    blend_ref: float | None
    gt_pairs: tuple[tuple[int, int], ...] = ()
    ref_pairs: tuple[tuple[int, int], ...] = ()
    sim_gt_per_face: tuple[float, ...] = ()
    sim_ref_per_face: tuple[float, ...] = ()
    copy_paste_per_face: tuple[float, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        return {
            "sim_gt": self.sim_gt,
            "sim_ref": self.sim_ref,
            "copy_paste": self.copy_paste,
            "blend_gt": self.blend_gt,
            "blend_ref": self.blend_ref,
            "gt_pairs": [list(p) for p in self.gt_pairs],
            "ref_pairs": [list(p) for p in self.ref_pairs],
            "sim_gt_per_face": list(self.sim_gt_per_face),
            "sim_ref_per_face": list(self.sim_ref_per_face),
            "copy_paste_per_face": list(self.copy_paste_per_face),
        }


def _matched(sim: FloatArray) -> tuple[float | None, float | None, tuple[tuple[int, int], ...], tuple[float, ...]]:
    """Mean matched similarity, mean unmatched similarity, the pairs and per-pair values."""
    if sim.size == 0:
        return None, None, (), ()
    rows, cols = match_faces(sim)
    values = sim[rows, cols]
    mask = np.ones(sim.shape, dtype=bool)
    mask[rows, cols] = False
    blend = float(sim[mask].mean()) if mask.any() else None
    pairs = tuple((int(i), int(j)) for i, j in zip(rows, cols))
    return float(values.mean()), blend, pairs, tuple(float(v) for v in values)


def identity_scores(
    gen: ArrayLike, gt: ArrayLike, refs: ArrayLike, *, eps: float = 1e-6, norm_eps: float = 0.0
) -> IdentityScores:
    """Sim(GT), Sim(Ref), copy-paste and blending for one case and one face model.

    Semantics follow the official evaluation (eval-protocol section 4): faces are paired by a
    Hungarian assignment maximising total cosine, GT and references each matched to the generated
    faces independently; copy-paste needs equal face counts.

    Args:
        gen: ``(n, D)`` generated-image faces. gt: ``(m, D)`` GT faces. refs: ``(k, D)`` reference faces.
            Any of them may be empty (``(0, D)``); a missing face gives ``None``, never an exception.
        eps, norm_eps: passed to :func:`compute_copy_paste`.

    Example:
        >>> s = identity_scores([[1.0, 0.0]], [[1.0, 0.0]], [[0.0, 1.0]])
        >>> s.sim_gt, s.sim_ref, s.copy_paste, s.blend_gt
        (1.0, 0.0, -1.0, None)
    """
    g, t, r = _as_2d(gen, "gen"), _as_2d(gt, "gt"), _as_2d(refs, "refs")
    s_gt = cosine_matrix(g, t)
    s_ref = cosine_matrix(g, r)
    sim_gt, blend_gt, gt_pairs, gt_vals = _matched(s_gt)
    sim_ref, blend_ref, ref_pairs, ref_vals = _matched(s_ref)

    copy_paste: float | None = None
    cp_vals: tuple[float, ...] = ()
    n, m, k = g.shape[0], t.shape[0], r.shape[0]
    if n == m == k > 0:
        t_of = dict(gt_pairs)
        r_of = dict(ref_pairs)
        order = range(n)
        per = compute_copy_paste(
            g[list(order)],
            t[[t_of[i] for i in order]],
            r[[r_of[i] for i in order]],
            eps=eps,
            norm_eps=norm_eps,
        )
        per_arr = np.atleast_1d(np.asarray(per, dtype=np.float64))
        cp_vals = tuple(float(v) for v in per_arr)
        copy_paste = float(per_arr.mean())
    return IdentityScores(
        sim_gt=sim_gt,
        sim_ref=sim_ref,
        copy_paste=copy_paste,
        blend_gt=blend_gt,
        blend_ref=blend_ref,
        gt_pairs=gt_pairs,
        ref_pairs=ref_pairs,
        sim_gt_per_face=gt_vals,
        sim_ref_per_face=ref_vals,
        copy_paste_per_face=cp_vals,
    )
