"""compute_copy_paste(norm_eps=0) against a 50-digit mpmath oracle on near-degenerate triplets.

The oracle is written from the paper's eq. 2 (normalise, arccos of the dot product, difference over
theta(t, r)) in 50-digit arithmetic, so it shares no code and no floating-point formulation with the
implementation (which takes near-parallel angles from chord lengths).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multiid_bench import compute_copy_paste

mpmath = pytest.importorskip("mpmath")

DIM = 8
EPS = 1e-6


def _oracle(g: np.ndarray, t: np.ndarray, r: np.ndarray, eps: float = EPS) -> float:
    with mpmath.workdps(50):
        def unit(x: np.ndarray) -> list:
            v = [mpmath.mpf(float(c)) for c in x]  # exact: every float64 is an mpf
            n = mpmath.sqrt(mpmath.fsum(c * c for c in v))
            return [c / n for c in v]

        def angle(a: list, b: list) -> mpmath.mpf:
            d = mpmath.fsum(x * y for x, y in zip(a, b))
            return mpmath.acos(max(mpmath.mpf(-1), min(mpmath.mpf(1), d)))

        ug, ut, ur = unit(g), unit(t), unit(r)
        th_tr = angle(ut, ur)
        if th_tr < eps:
            return 0.0, float(th_tr)
        return float((angle(ug, ut) - angle(ug, ur)) / th_tr), float(th_tr)


def _triplet(seed: int, tr_exp: float, g_kind: int, g_exp: float, scale_exp: float) -> tuple:
    """GT/reference ``10**tr_exp`` apart; g a near-copy of t or r, between them, or far away."""
    rng = np.random.default_rng(seed)
    t = rng.normal(size=DIM) * 10.0**scale_exp
    u, w = rng.normal(size=DIM), rng.normal(size=DIM)
    r = t + 10.0**tr_exp * np.linalg.norm(t) * u / np.linalg.norm(u)
    step = 10.0**g_exp * np.linalg.norm(t) * w / np.linalg.norm(w)
    if g_kind == 0:
        g = t + step
    elif g_kind == 1:
        g = r + step
    elif g_kind == 2:
        g = 0.5 * (t + r) + step
    elif g_kind == 3:
        g = t.copy()  # exact copy of the GT
    else:
        g = rng.normal(size=DIM) * 10.0**scale_exp  # unrelated face
    return g, t, r


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.floats(-5.5, 0.0),  # theta(t, r) from ~3e-6 rad up to ~1 rad
    st.integers(0, 4),
    st.floats(-12.0, -1.0),
    st.floats(-2.0, 2.0),
)
def test_exact_copy_paste_matches_mpmath(seed: int, tr_exp: float, g_kind: int, g_exp: float,
                                          scale_exp: float) -> None:
    g, t, r = _triplet(seed, tr_exp, g_kind, g_exp, scale_exp)
    expected, th_tr = _oracle(g, t, r)
    if abs(th_tr - EPS) < 1e-9:
        return  # on the eps boundary either branch is right
    got = compute_copy_paste(g, t, r)
    assert abs(got - expected) <= 1e-9, (got, expected, th_tr)


def test_exact_copy_paste_microradian_gap_batched_and_float32() -> None:
    """GT and reference 1e-5 rad apart: the old arccos path erred by up to 1e-4 here."""
    rows = [_triplet(s, -5.0 - 0.3 * (s % 3), s % 5, -7.0 - (s % 4), 1.3) for s in range(60)]
    g, t, r = (np.stack(x) for x in zip(*rows))
    expected = np.array([_oracle(*row)[0] for row in rows])
    np.testing.assert_allclose(compute_copy_paste(g, t, r), expected, rtol=0, atol=1e-9)
    # float32 embeddings: exact for the float32 values themselves
    g32, t32, r32 = (x.astype(np.float32) for x in (g, t, r))
    expected32 = np.array([_oracle(*(x.astype(np.float64) for x in row))[0] for row in zip(g32, t32, r32)])
    np.testing.assert_allclose(compute_copy_paste(g32, t32, r32), expected32, rtol=0, atol=1e-9)


def test_exact_copies_are_exactly_minus_and_plus_one_at_tiny_gaps() -> None:
    g, t, r = _triplet(7, -5.0, 3, -8.0, 0.0)
    assert compute_copy_paste(t, t, r) == -1.0
    assert compute_copy_paste(r, t, r) == 1.0


def _official_formula(g: np.ndarray, t: np.ndarray, r: np.ndarray, eps: float = 1e-6) -> float:
    """The official copy_geo, written out from its description (eval-protocol 4.5), in float64."""
    g, t, r = (x / (np.linalg.norm(x) + eps) for x in (g, t, r))
    th = [np.arccos(np.clip(np.dot(a, b), -1.0, 1.0)) for a, b in ((g, t), (g, r), (t, r))]
    return 0.0 if th[2] < eps else float((th[0] - th[1]) / th[2])


def test_paper_norm_eps_keeps_official_numerics() -> None:
    """The official formula is itself ill-conditioned near +-1 (arccos), so compare where it is not."""
    rng = np.random.default_rng(3)
    for i in range(200):
        g, t, r = _triplet(i, rng.uniform(-1.5, 0), i % 5, rng.uniform(-1.5, -0.5), 1.3)
        if i % 5 == 3:
            g = g + 0.1 * np.linalg.norm(g) / np.sqrt(DIM)  # not an exact copy: keep away from cos = 1
        assert compute_copy_paste(g, t, r, norm_eps=1e-6) == pytest.approx(_official_formula(g, t, r), abs=1e-12)
