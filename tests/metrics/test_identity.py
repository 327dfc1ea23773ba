"""Metric core: exact hand-computed values and property tests (paper eq. 1, 2, 8)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from multiid_bench import compute_copy_paste
from multiid_bench.metrics import cosine_matrix, identity_scores, match_faces


# ---- hand-computed values ------------------------------------------------------------------------

def test_copy_paste_2d_half_way() -> None:
    # t at 0 deg, r at 90 deg, g at 30 deg: (30 - 60) / 90 = -1/3
    g = [math.cos(math.radians(30)), math.sin(math.radians(30))]
    assert compute_copy_paste(g, [1, 0], [0, 1]) == pytest.approx(-1 / 3, abs=1e-12)


def test_copy_paste_3d_off_plane() -> None:
    # t = x, r = y, g = z: theta_gt = theta_gr = 90 deg -> 0 regardless of theta_tr
    assert compute_copy_paste([0, 0, 1], [1, 0, 0], [0, 1, 0]) == pytest.approx(0.0, abs=1e-12)
    # g = (1, 1, 1)/sqrt3, t = x, r = (1, 1, 0)/sqrt2
    g, t, r = np.array([1.0, 1, 1]), np.array([1.0, 0, 0]), np.array([1.0, 1, 0])
    th_gt = math.acos(1 / math.sqrt(3))
    th_gr = math.acos(2 / math.sqrt(6))
    th_tr = math.acos(1 / math.sqrt(2))
    assert compute_copy_paste(g, t, r) == pytest.approx((th_gt - th_gr) / th_tr, abs=1e-12)


def test_copy_paste_exact_copies_and_degenerate() -> None:
    assert compute_copy_paste([3, 4], [3, 4], [4, -3]) == -1.0
    assert compute_copy_paste([4, -3], [3, 4], [4, -3]) == 1.0
    # t == r: theta_tr = 0 < eps -> 0 by the official rule, not a division by ~0
    assert compute_copy_paste([1, 0], [0, 1], [0, 1]) == 0.0


def test_copy_paste_returns_float_for_1d_and_array_for_batches() -> None:
    assert isinstance(compute_copy_paste([1, 0], [1, 0], [0, 1]), float)
    out = compute_copy_paste(np.ones((4, 3, 8)), np.ones((1, 8)), np.eye(8)[:3])
    assert isinstance(out, np.ndarray) and out.shape == (4, 3)


def test_copy_paste_paper_norm_eps_offset() -> None:
    rng = np.random.default_rng(0)
    t, r = rng.normal(size=512) * 1.2, rng.normal(size=512) * 1.2  # norms ~ 27, like raw ArcFace
    exact = compute_copy_paste(t, t, r)
    paper = compute_copy_paste(t, t, r, norm_eps=1e-6)
    assert exact == -1.0
    # (|x| + 1e-6) scaling leaves theta(g, t) ~ sqrt(2 * 2e-6 / |t|) instead of 0
    th_tr = math.acos(np.dot(t, r) / np.linalg.norm(t) / np.linalg.norm(r))
    expected = -1 + math.sqrt(2 * 2e-6 / np.linalg.norm(t)) / th_tr
    assert paper == pytest.approx(expected, abs=2e-5)
    assert -0.9999 < paper < -0.999


def test_copy_paste_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="embedding sizes differ"):
        compute_copy_paste(np.ones(3), np.ones(4), np.ones(3))
    with pytest.raises(ValueError, match="scalar"):
        compute_copy_paste(1.0, np.ones(4), np.ones(4))


def test_cosine_matrix_values() -> None:
    m = cosine_matrix([[1, 0], [0, 2], [0, 0]], [[1, 1], [-3, 0]])
    np.testing.assert_allclose(m, [[1 / math.sqrt(2), -1], [1 / math.sqrt(2), 0], [0, 0]], atol=1e-12)
    assert cosine_matrix(np.zeros((0, 5)), np.ones((3, 5))).shape == (0, 3)


def test_match_faces_maximises_total() -> None:
    s = np.array([[0.9, 0.8], [0.85, 0.1]])  # greedy would take 0.9 + 0.1; optimum is 0.8 + 0.85
    rows, cols = match_faces(s)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]


def test_identity_scores_two_faces_hand_computed() -> None:
    gen = [[1, 0, 0], [0, 1, 0]]
    gt = [[0, 1, 0], [1, 0, 0]]  # swapped order
    refs = [[0, 0.6, 0.8], [0.6, 0, 0.8]]
    s = identity_scores(gen, gt, refs)
    assert s.sim_gt == pytest.approx(1.0)
    assert s.gt_pairs == ((0, 1), (1, 0))
    assert s.blend_gt == pytest.approx(0.0)
    assert s.sim_ref == pytest.approx(0.6)
    assert s.ref_pairs == ((0, 1), (1, 0))
    assert s.blend_ref == pytest.approx(0.0)
    # each generated face equals its GT: copy-paste -1 for both
    assert s.copy_paste == pytest.approx(-1.0)
    assert s.copy_paste_per_face == pytest.approx((-1.0, -1.0))


def test_identity_scores_counts_differ_and_empty() -> None:
    s = identity_scores([[1, 0]], [[1, 0], [0, 1]], [[1, 0]])
    assert s.sim_gt == 1.0 and s.blend_gt == pytest.approx(0.0)
    assert s.copy_paste is None  # 1 generated vs 2 GT faces
    assert s.blend_ref is None  # 1x1 has no unmatched pair
    empty = identity_scores(np.zeros((0, 2)), [[1, 0]], [[1, 0]])
    assert (empty.sim_gt, empty.sim_ref, empty.copy_paste, empty.blend_gt) == (None, None, None, None)


def test_identity_scores_rejects_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        identity_scores([[np.nan, 0]], [[1, 0]], [[1, 0]])


# ---- properties ----------------------------------------------------------------------------------

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=64)
vec = arrays(np.float64, 6, elements=finite)


def _nonzero(*xs: np.ndarray) -> bool:
    return all(np.linalg.norm(x) > 1e-3 for x in xs)


@settings(max_examples=200, deadline=None)
@given(vec, vec, vec)
def test_cp_in_range_and_antisymmetric(g: np.ndarray, t: np.ndarray, r: np.ndarray) -> None:
    assume(_nonzero(g, t, r))
    cp = compute_copy_paste(g, t, r)
    assert -1.0 <= cp <= 1.0
    assert compute_copy_paste(g, r, t) == pytest.approx(-cp, abs=1e-9)
    assert -1.0 <= compute_copy_paste(g, t, r, norm_eps=1e-6) <= 1.0


@settings(max_examples=200, deadline=None)
@given(vec, vec)
def test_cp_copies(t: np.ndarray, r: np.ndarray) -> None:
    assume(_nonzero(t, r))
    assume(np.arccos(np.clip(cosine_matrix([t], [r])[0, 0], -1, 1)) > 1e-3)
    assert compute_copy_paste(r, t, r) == pytest.approx(1.0, abs=1e-6)
    assert compute_copy_paste(t, t, r) == pytest.approx(-1.0, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(vec, vec, vec, st.floats(0.01, 100), st.floats(0.01, 100), st.floats(0.01, 100))
def test_cp_scale_invariant(g, t, r, a, b, c) -> None:
    assume(_nonzero(g, t, r))
    assert compute_copy_paste(a * g, b * t, c * r) == pytest.approx(compute_copy_paste(g, t, r), abs=1e-7)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_identity_scores_permutation_invariant(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    gen, gt, refs = rng.normal(size=(n, 8)), rng.normal(size=(n, 8)), rng.normal(size=(n, 8))
    base = identity_scores(gen, gt, refs)
    p1, p2, p3 = rng.permutation(n), rng.permutation(n), rng.permutation(n)
    perm = identity_scores(gen[p1], gt[p2], refs[p3])
    for field in ("sim_gt", "sim_ref", "copy_paste", "blend_gt", "blend_ref"):
        a, b = getattr(base, field), getattr(perm, field)
        assert (a is None) == (b is None)
        if a is not None:
            assert a == pytest.approx(b, abs=1e-9)


def test_batched_equals_loop() -> None:
    rng = np.random.default_rng(1)
    g, t, r = (rng.normal(size=(50, 16)).astype(np.float32) for _ in range(3))
    batched = compute_copy_paste(g, t, r)
    looped = [compute_copy_paste(g[i], t[i], r[i]) for i in range(50)]
    np.testing.assert_allclose(batched, looped, atol=1e-12)


def test_float32_inputs_match_float64_reference() -> None:
    rng = np.random.default_rng(2)
    t, r, noise = (rng.normal(size=(2000, 512)) for _ in range(3))
    # spread over the whole range, including near-copies where float32 dot products are refined
    w = rng.uniform(0, 1, size=(2000, 1))
    g = w * t + (1 - w) * r + rng.uniform(0, 0.3, size=(2000, 1)) * noise
    g[:100] = r[:100] + 1e-4 * noise[:100]
    ref = compute_copy_paste(g, t, r)
    f32 = compute_copy_paste(g.astype(np.float32), t.astype(np.float32), r.astype(np.float32))
    f32_ref = compute_copy_paste(*(x.astype(np.float32).astype(np.float64) for x in (g, t, r)))
    assert np.abs(f32 - f32_ref).max() < 1e-6
    assert np.abs(f32 - ref).max() < 1e-3  # the rest is float32 rounding of the inputs themselves
