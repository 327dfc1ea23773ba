"""Training losses against hand computations (spec §3, §6.5; paper eq. 3-5, 10-14)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest_train import one_thread  # noqa: F401 (fixture)
from multiid_bench.reference_model import losses as L
from multiid_bench.reference_model.arcface_torch import IResNetConfig, build_iresnet

from multiid_bench.errors import BadInputError
from tests.iresnet_stand_in import random_bn_iresnet

TEMPLATE = np.asarray(L.ARCFACE_TEMPLATE_112, np.float32)


# ------------------------------------------------------------------------------------- flow matching
@pytest.mark.parametrize("convention", ["paper", "official"])
def test_flow_matching_loss_by_hand(convention):
    g = torch.Generator().manual_seed(0)
    x1, noise, v_pred = (torch.randn(2, 5, 8, generator=g) for _ in range(3))
    sigma = torch.tensor([0.25, 0.8])
    fs = L.make_flow_sample(x1, noise, sigma, convention=convention)
    x1n, nn_, vn, s = x1.numpy(), noise.numpy(), v_pred.numpy(), sigma.numpy()[:, None, None]
    np.testing.assert_allclose(fs.x_t.numpy(), s * nn_ + (1 - s) * x1n, rtol=1e-6)
    target = x1n - nn_ if convention == "paper" else nn_ - x1n
    np.testing.assert_allclose(fs.target.numpy(), target, rtol=1e-6)
    expected = ((vn - target) ** 2).reshape(2, -1).mean(axis=1)
    np.testing.assert_allclose(L.flow_matching_loss(v_pred, fs.target).numpy(), expected, rtol=1e-6)
    t_expected = 1 - sigma if convention == "paper" else sigma  # paper: t = 1 is clean data (Sec. 5.1)
    assert torch.equal(fs.t, t_expected)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_conventions_give_the_same_loss_for_the_same_transformer_output():
    g = torch.Generator().manual_seed(1)
    x1, noise, v_flux = (torch.randn(3, 4, 8, generator=g) for _ in range(3))
    sigma = torch.tensor([0.1, 0.5, 0.9])
    losses = []
    for conv in ("paper", "official"):
        fs = L.make_flow_sample(x1, noise, sigma, convention=conv)
        losses.append(L.flow_matching_loss(L.to_convention(v_flux, conv), fs.target))
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("convention", ["paper", "official"])
def test_one_step_estimate_recovers_x1_when_velocity_is_exact(convention):
    g = torch.Generator().manual_seed(2)
    x1, noise = torch.randn(4, 6, 8, generator=g), torch.randn(4, 6, 8, generator=g)
    sigma = torch.tensor([0.0, 0.3, 0.7, 1.0])
    fs = L.make_flow_sample(x1, noise, sigma, convention=convention)
    v = fs.target.clone().requires_grad_(True)
    x_hat = L.predict_clean(fs.x_t, v, fs.t, convention=convention)
    torch.testing.assert_close(x_hat, x1, rtol=0, atol=1e-6)
    x_hat.sum().backward()  # d x̂/d v̂ = −t = −σ (official); 1 − t = σ (paper, where v̂ has the other sign)
    expected = -sigma if convention == "official" else sigma
    assert torch.equal(v.grad[:, 0, 0], expected)


def test_official_formula_x_t_minus_t_v():
    x_t, v, t = torch.full((1, 2, 4), 3.0), torch.full((1, 2, 4), 2.0), torch.tensor([0.25])
    assert torch.equal(L.predict_clean(x_t, v, t, convention="official"), torch.full((1, 2, 4), 2.5))


def test_sigma_sampling_rules():
    assert L.flux_mu(1024) == pytest.approx(0.5 + 0.65 * 768 / 3840)  # 0.63 at 512² (spec §3.1)
    g = torch.Generator().manual_seed(0)
    s = L.sample_sigmas(20000, sampling="shifted", seq_len=1024, generator=g)
    grid = L.time_shift(L.flux_mu(1024), torch.linspace(1, 0, 1000, dtype=torch.float64)).float()
    assert set(torch.unique(s).tolist()) <= set(grid.tolist())
    assert 0.53 < float((s > 0.6).float().mean()) < 0.59  # spec: ≈56 % of draws have t > 0.6
    u = L.sample_sigmas(20000, sampling="uniform", generator=g)
    assert 0.0 <= float(u.min()) and float(u.max()) <= 1.0 and abs(float(u.mean()) - 0.5) < 0.01


def test_pack_layout_by_hand_and_round_trip():
    """Token (i, j) holds channels in (c, ph, pw) order of the 2×2 patch at (2i, 2j) (= diffusers' packing)."""
    lat = torch.randn(2, 4, 8, 6)
    packed = L.pack_latents(lat)
    assert packed.shape == (2, 4 * 3, 16)
    for i in range(4):
        for j in range(3):
            expected = torch.stack([lat[:, c, 2 * i + ph, 2 * j + pw] for c in range(4) for ph in (0, 1)
                                    for pw in (0, 1)], dim=1)
            assert torch.equal(packed[:, i * 3 + j], expected)
    assert torch.equal(L.unpack_latents(packed, 64, 48), lat)


def test_identity_gate_modes():
    sigma = torch.tensor([0.7, 0.2, 0.9])
    assert torch.equal(L.identity_gate(sigma, None), torch.ones(3))
    per = L.identity_gate(sigma, 0.6)
    torch.testing.assert_close(per, torch.tensor([1e-5, 1 - 1e-5, 1e-5]))
    first = L.identity_gate(torch.tensor([0.2, 0.9]), 0.6, mode="batch_first")  # released: sample 0 decides
    torch.testing.assert_close(first, torch.tensor([1 - 1e-5, 1 - 1e-5]))


# ------------------------------------------------------------------------------------------- InfoNCE
def _hand_info_nce(q, p, negs, tau):
    qn, pn = q / np.linalg.norm(q), p / np.linalg.norm(p)
    logits = [qn @ pn / tau] + [qn @ (n / np.linalg.norm(n)) / tau for n in negs]
    logits = np.asarray(logits, np.float64)
    return -(logits[0] - np.log(np.exp(logits).sum()))


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_info_nce_single_query_equals_minus_log_softmax(tau):
    g = torch.Generator().manual_seed(3)
    q, p = torch.randn(1, 16, generator=g), torch.randn(1, 16, generator=g)
    bank = torch.randn(1, 7, 16, generator=g)
    got = L.info_nce_extended(q, p, torch.tensor([0]), bank_negatives=bank, tau=tau, in_batch=False)
    expected = _hand_info_nce(q[0].numpy(), p[0].numpy(), bank[0].numpy(), tau)
    assert got.dtype == torch.float32
    assert float(got[0]) == pytest.approx(expected, rel=1e-5)
    # the same number as cross-entropy with the positive in slot 0 (the released library's definition)
    logits = torch.cat([torch.nn.functional.cosine_similarity(q, p)[:, None],
                        torch.nn.functional.cosine_similarity(q[:, None], bank, dim=-1)], 1) / tau
    assert float(got[0]) == pytest.approx(float(-torch.log_softmax(logits, 1)[0, 0]), rel=1e-5)


def test_info_nce_in_batch_negatives_skip_same_identity_and_use_bank():
    g = torch.Generator().manual_seed(4)
    q, p = torch.randn(4, 8, generator=g), torch.randn(4, 8, generator=g)
    ident = torch.tensor([10, 11, 10, -7])  # rows 0 and 2 are the same person
    bank = torch.randn(4, 3, 8, generator=g)
    got = L.info_nce_extended(q, p, ident, bank_negatives=bank, tau=0.1).numpy()
    for i in range(4):
        others = [p[j].numpy() for j in range(4) if int(ident[j]) != int(ident[i])]
        expected = _hand_info_nce(q[i].numpy(), p[i].numpy(), others + list(bank[i].numpy()), 0.1)
        assert got[i] == pytest.approx(expected, rel=1e-5)


def test_info_nce_is_fp32_for_bf16_inputs():
    g = torch.Generator().manual_seed(5)
    q, p = torch.randn(2, 8, generator=g), torch.randn(2, 8, generator=g)
    bank = torch.randn(2, 4000, 8, generator=g)
    a = L.info_nce_extended(q.bfloat16(), p.bfloat16(), torch.tensor([0, 1]), bank_negatives=bank.bfloat16())
    b = L.info_nce_extended(q.bfloat16().float(), p.bfloat16().float(), torch.tensor([0, 1]),
                            bank_negatives=bank.bfloat16().float())
    assert a.dtype == torch.float32 and torch.equal(a, b)


# --------------------------------------------------------------------------------------- ID loss
def test_alignment_maps_template_onto_itself_and_passes_pixel_gradients():
    img = (torch.rand(1, 3, 112, 112) * 2 - 1).requires_grad_(True)
    lm = torch.from_numpy(TEMPLATE).reshape(1, 1, 5, 2)
    for transform in ("similarity", "affine"):
        crop = L.align_faces_differentiable(img, lm, transform=transform)
        torch.testing.assert_close(crop[0, 0], img[0], atol=1e-4, rtol=0)
    crop.sum().backward()
    assert img.grad is not None and float(img.grad.abs().sum()) > 0


def test_alignment_matches_insightface_warp():
    """Our grid_sample crop equals cv2.warpAffine with the skimage similarity fit insightface uses."""
    import cv2
    from skimage.transform import SimilarityTransform

    rng = np.random.default_rng(0)
    small = rng.uniform(0, 255, (20, 24, 3)).astype(np.uint8)
    img = cv2.resize(small, (240, 200), interpolation=cv2.INTER_CUBIC)
    lm = TEMPLATE * 1.3 + np.array([50.0, 30.0], np.float32) + rng.normal(0, 1.5, (5, 2)).astype(np.float32)
    if hasattr(SimilarityTransform, "from_estimate"):
        tf = SimilarityTransform.from_estimate(lm, TEMPLATE)
    else:  # scikit-image < 0.26
        tf = SimilarityTransform()
        tf.estimate(lm, TEMPLATE)
    ref = cv2.warpAffine(img, tf.params[:2], (112, 112), flags=cv2.INTER_LINEAR, borderValue=0.0)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    ours = L.align_faces_differentiable(x, torch.from_numpy(lm)[None, None])[0, 0]
    ref_t = torch.from_numpy(ref).permute(2, 0, 1).float() / 127.5 - 1
    assert float((ours - ref_t)[:, 2:-2, 2:-2].abs().mean()) < 0.01


class _LinearFace(torch.nn.Module):
    """A fixed linear 'recogniser' so that g and t can be recomputed by hand from the crops."""

    def __init__(self, dim: int = 6) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(9)
        self.w = torch.nn.Parameter(torch.randn(3 * 112 * 112, dim, generator=g) / 100, requires_grad=False)

    def forward(self, x):
        return x.flatten(1) @ self.w


def _two_face_gt(seed=0):
    rng = np.random.default_rng(seed)
    gt = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 128, 160)).astype(np.float32))
    lm = np.stack([TEMPLATE * 0.5 + [10, 20], TEMPLATE * 0.6 + [80, 30]]).astype(np.float32)
    return gt, torch.from_numpy(lm)[None]


def test_gt_aligned_id_loss_by_hand():
    net = _LinearFace()
    gt, lm = _two_face_gt()
    pred = (gt + 0.3 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(1))).requires_grad_(True)
    valid = torch.tensor([[True, True]])
    out = L.gt_aligned_id_loss(net, pred, gt, lm, valid)
    for i in range(2):
        crop_p = L.align_faces_differentiable(pred, lm[:, i:i + 1])[0, 0]
        crop_t = L.align_faces_differentiable(gt, lm[:, i:i + 1])[0, 0]
        g_, t_ = net(crop_p[None])[0].detach().numpy(), net(crop_t[None])[0].numpy()
        expected = 1 - g_ @ t_ / (np.linalg.norm(g_) * np.linalg.norm(t_))
        assert float(out.loss[0, i].detach()) == pytest.approx(float(expected), rel=1e-4, abs=1e-6)
    assert out.query.requires_grad and not out.target.requires_grad
    invalid = L.gt_aligned_id_loss(net, pred, gt, lm, torch.tensor([[True, False]]))
    assert float(invalid.loss[0, 1].detach()) == 0.0
    assert float(invalid.loss[0, 0].detach()) == pytest.approx(float(out.loss[0, 0].detach()))


def test_regression_gt_range_bug_is_fixed():
    """Released code fed the [-1, 1] GT into a 0-255 path (spec §6.2.1): then L_ID(GT, GT) was far from 0."""
    torch.manual_seed(0)
    net = build_iresnet(IResNetConfig((1, 1, 1, 1), (4, 4, 8, 8), 32))
    gt, lm = _two_face_gt(1)
    same = L.gt_aligned_id_loss(net, gt.clone(), gt, lm, torch.tensor([[True, True]]))
    assert float(same.loss.abs().max()) < 1e-5
    # What the bug did: the GT side saw 127.5·(x+1)-style mismatched pixels. The loss then is not ~0 ...
    buggy_gt_crops = L.align_faces_differentiable(gt * 127.5 + 127.5, lm)  # 0-255 values into the [-1,1] model
    t_bug = net(buggy_gt_crops.reshape(2, 3, 112, 112))
    cos_bug = torch.nn.functional.cosine_similarity(same.query.reshape(2, -1), t_bug, dim=-1)
    assert float((1 - cos_bug).min()) > 0.01
    # ... and our loss refuses such an input instead of computing it silently.
    with pytest.raises(BadInputError, match="0-255"):
        L.gt_aligned_id_loss(net, gt, gt * 127.5 + 127.5, lm, torch.tensor([[True, True]]))


def test_regression_face_order_bug_is_fixed():
    """Detections arrive by confidence, not in box order (spec §6.2.2): landmarks must follow the boxes."""
    boxes = np.array([[0, 0, 40, 40], [60, 0, 100, 40]], np.float32)
    lm_a, lm_b = TEMPLATE * 0.3 + [2, 2], TEMPLATE * 0.3 + [62, 2]
    det_boxes = np.array([[61, 1, 99, 41], [1, 0, 41, 39]], np.float32)  # right face is the more confident one
    lms, ok = L.match_landmarks_to_boxes(det_boxes, np.stack([lm_b, lm_a]), boxes)
    assert ok.tolist() == [True, True]
    np.testing.assert_allclose(lms[0], lm_a)
    np.testing.assert_allclose(lms[1], lm_b)
    # a single detection is not duplicated onto the other face (the released helper did that)
    lms, ok = L.match_landmarks_to_boxes(det_boxes[:1], lm_b[None], boxes)
    assert ok.tolist() == [False, True] and np.all(lms[0] == 0)
    # and an unrelated detection (IoU below threshold) is not used
    lms, ok = L.match_landmarks_to_boxes(np.array([[200, 200, 240, 240]]), lm_a[None], boxes)
    assert not ok.any()
    # end to end: face i's query embedding is the embedding of face i's region
    net = _LinearFace()
    gt, lm = _two_face_gt(2)
    out = L.gt_aligned_id_loss(net, gt, gt, lm, torch.tensor([[True, True]]))
    single = L.gt_aligned_id_loss(net, gt, gt, lm[:, 1:], torch.tensor([[True]]))
    torch.testing.assert_close(out.query[0, 1], single.query[0, 0])
    assert math.isclose(float(out.loss.abs().max()), 0.0, abs_tol=1e-5)


# ------------------------------------------------------------------------------------- loss ArcFace
def _random_bn_iresnet(seed=0):
    return random_bn_iresnet((2, 1, 2, 1), (4, 6, 8, 8), 16, seed)


def test_loss_arcface_loads_state_dicts_and_refuses_other_files(tmp_path):
    from multiid_bench.reference_model.arcface_torch import load_loss_arcface
    from safetensors.torch import save_file

    from multiid_bench.errors import MissingWeightsError

    net = _random_bn_iresnet()
    x = torch.rand(2, 3, 112, 112) * 2 - 1
    save_file(net.state_dict(), str(tmp_path / "r.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "r.pth")
    for name in ("r.safetensors", "r.pth"):
        loaded = load_loss_arcface(tmp_path / name)
        assert loaded.config == net.config and torch.equal(loaded(x), net(x))
        assert not any(p.requires_grad for p in loaded.parameters())
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")  # a pickled module: refused, never executed
    with pytest.raises(BadInputError, match="not a plain state dict"):
        load_loss_arcface(tmp_path / "module.pth")
    with pytest.raises(MissingWeightsError, match="glintr100"):
        load_loss_arcface(tmp_path / "absent.pth")


def test_loss_arcface_converts_an_insightface_style_onnx_export(tmp_path):
    """glintr100.onnx is an arcface_torch export with BN folded into the convs; the converter must undo that."""
    import warnings

    from multiid_bench.reference_model.arcface_torch import load_loss_arcface

    net = _random_bn_iresnet(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, torch.randn(1, 3, 112, 112), str(tmp_path / "g.onnx"), dynamo=False,
                          opset_version=11, input_names=["input.1"], dynamic_axes={"input.1": {0: "batch"}})
    import onnx

    ops = {n.op_type for n in onnx.load(str(tmp_path / "g.onnx")).graph.node}
    assert "Conv" in ops and "PRelu" in ops
    converted = load_loss_arcface(tmp_path / "g.onnx")
    assert converted.config == net.config
    x = torch.rand(3, 3, 112, 112) * 2 - 1
    torch.testing.assert_close(converted(x), net(x), rtol=1e-4, atol=1e-5)
