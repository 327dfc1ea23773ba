"""FID: hand-checkable Gaussians, an eigenvalue oracle, the eps retry, single input normalisation, real loader."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest

from multiid_bench.errors import ConfigError, MissingWeightsError
from multiid_bench.metrics.cards import get_card
from multiid_bench.scorers.fid import (
    FID_SQRTM_EPS,
    FidScorer,
    feature_statistics,
    fid_from_features,
    fid_pixels,
    frechet_distance,
)


def _oracle_fid(a: np.ndarray, b: np.ndarray) -> float:
    """Independent route: tr sqrt(S1 S2) = sum sqrt(eig(S1^1/2 S2 S1^1/2)), all symmetric eigendecompositions."""
    m1, s1 = a.mean(0), np.cov(a, rowvar=False)
    m2, s2 = b.mean(0), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    ev = np.linalg.eigvalsh(root @ s2 @ root)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev, 0, None)).sum())


def test_one_dimensional_gaussians_by_hand() -> None:
    # set A = {0, 2}: mean 1, var 2; set B = {1, 5}: mean 3, var 8 -> (1-3)^2 + (sqrt2 - sqrt8)^2 = 4 + 2 = 6
    assert fid_from_features([[0.0], [2.0]], [[1.0], [5.0]]) == pytest.approx(6.0, abs=1e-12)
    assert frechet_distance([0.0], [[4.0]], [0.0], [[4.0]]) == pytest.approx(0.0, abs=1e-12)
    assert frechet_distance([0.0], [[1.0]], [3.0], [[1.0]]) == pytest.approx(9.0, abs=1e-12)


def test_diagonal_covariances_closed_form() -> None:
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    v1, v2 = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("n", "d"), [(40, 5), (3, 8), (20, 64)])  # the last two: rank-deficient, N < D
def test_matches_eigenvalue_oracle_and_self_is_zero(n: int, d: int) -> None:
    rng = np.random.default_rng(n + d)
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d)) * 1.5 + 0.3
    got = fid_from_features(a, b)
    assert np.isfinite(got) and got > 0
    assert got == pytest.approx(_oracle_fid(a, b), rel=1e-6)
    assert fid_from_features(b, a) == pytest.approx(got, rel=1e-6)
    assert abs(fid_from_features(a, a)) < 1e-5 * max(1.0, np.trace(np.cov(a, rowvar=False)))


def test_eps_retry_when_sqrtm_is_not_finite(monkeypatch, caplog) -> None:
    import scipy.linalg

    real, calls = scipy.linalg.sqrtm, []

    def flaky(m):
        calls.append(m.copy())
        return np.full_like(m, np.nan) if len(calls) == 1 else real(m)

    monkeypatch.setattr(scipy.linalg, "sqrtm", flaky)
    s1, s2 = np.diag([1.0, 4.0]), np.diag([9.0, 16.0])
    with caplog.at_level(logging.WARNING, logger="multiid_bench.scorers.fid"):
        got = frechet_distance([0.0, 0.0], s1, [0.0, 0.0], s2)
    assert len(calls) == 2 and "retrying" in caplog.text
    np.testing.assert_allclose(calls[1], (s1 + FID_SQRTM_EPS * np.eye(2)) @ (s2 + FID_SQRTM_EPS * np.eye(2)))
    e = FID_SQRTM_EPS
    expected = (1 + 4 + 9 + 16) - 2 * (np.sqrt((1 + e) * (9 + e)) + np.sqrt((4 + e) * (16 + e)))
    assert got == pytest.approx(expected, rel=1e-12)
    assert abs(got - 8.0) > 1e-6  # the offset was applied (without it the distance is exactly 8)


def test_large_imaginary_part_is_refused(monkeypatch) -> None:
    import scipy.linalg

    monkeypatch.setattr(scipy.linalg, "sqrtm", lambda m: np.eye(m.shape[0]) * (1 + 0.5j))
    with pytest.raises(ValueError, match="imaginary part"):
        frechet_distance([0.0], [[1.0]], [0.0], [[1.0]])


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="at least 2 images"):
        feature_statistics(np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        feature_statistics(np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        feature_statistics(np.array([[0.0], [np.nan]]))
    with pytest.raises(ValueError, match="disagree"):
        fid_from_features(np.zeros((3, 2)), np.zeros((3, 3)))


def test_card_says_biased_at_small_n() -> None:
    card = get_card("fid")
    assert "biased" in card.scale and card.higher_is_better is False


def _tiny_extractor():
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, kernel_size=5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten())
    seen: list = []
    net.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach().clone()))
    return net, seen


def test_single_input_normalisation_reaches_the_network() -> None:
    from PIL import Image

    net, seen = _tiny_extractor()
    s = FidScorer(extractor=net, extractor_id="tiny", feature_dim=24)
    s.load("cpu")
    s.encode_images([Image.new("RGB", (320, 300), (255, 255, 255)), Image.new("RGB", (300, 500), (0, 0, 0))])
    x = seen[-1]
    assert tuple(x.shape) == (2, 3, 299, 299)
    assert float(x[0].min()) == 1.0 and float(x[0].max()) == 1.0      # white -> +1 (no ImageNet mean/std)
    assert float(x[1].min()) == -1.0 and float(x[1].max()) == -1.0    # black -> -1
    grey = fid_pixels(Image.new("RGB", (10, 10), (51, 102, 204)))
    np.testing.assert_allclose(grey[:, 0, 0].numpy(), [51 / 255 * 2 - 1, 102 / 255 * 2 - 1, 204 / 255 * 2 - 1], atol=1e-6)


def test_fid_with_any_extractor(images) -> None:
    from PIL import Image

    net, _ = _tiny_extractor()
    s = FidScorer(extractor=net, extractor_id="tiny", feature_dim=24, batch_size=3)
    s.load("cpu")
    assert s.weight_ids == () and s.card.model == "custom:tiny"
    feats = s.encode_images(images)
    assert feats.shape == (8, 24)
    assert abs(fid_from_features(feats, feats)) < 1e-6
    dark = [Image.eval(im, lambda v: v // 3) for im in images]
    assert fid_from_features(feats, s.encode_images(dark)) > 1e-3
    s.batch_size = 1
    assert np.abs(s.encode_images(images) - feats).max() <= 1e-5


@pytest.mark.slow
def test_real_fid_inception_loads_through_the_file_path(tmp_path: Path, images) -> None:
    """Full-size FID Inception, random weights saved as a .pth state dict, loaded strictly (weights_only)."""
    import torch

    from multiid_bench.scorers._fid_inception import FidInceptionV3

    torch.manual_seed(0)
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(FidInceptionV3().state_dict(), path)
    s = FidScorer(weights=path, batch_size=2)
    s.load("cpu")
    assert s.card.feature_dim == 2048 and s.card.weights_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    two = s.encode_images(images[:2])
    assert two.shape == (2, 2048) and np.isfinite(two).all() and np.abs(two[0] - two[1]).max() > 0
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(1008, 2048)}, bad)
    with pytest.raises(ConfigError, match="not the FID Inception state dict"):
        FidScorer(weights=bad).load("cpu")


def test_missing_weights_offline(tmp_path: Path) -> None:
    s = FidScorer(cache_dir=tmp_path, offline=True)
    assert s.weight_ids == ("fid-inception-2015-12-05",)
    with pytest.raises(MissingWeightsError, match="mbench weights download fid-inception-2015-12-05"):
        s.load("cpu")
    with pytest.raises(ConfigError, match="feature_dim"):
        FidScorer(extractor=lambda x: x)
