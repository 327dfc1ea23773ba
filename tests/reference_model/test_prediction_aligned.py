"""Prediction-aligned ID loss (``loss.id_alignment = "prediction"``; paper Fig. 7 ablation, released variant A)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest_train import TEMPLATE, TINY_ARCFACE, one_thread, tiny_config, write_synthetic_data  # noqa: F401

from multiid_bench.errors import ConfigError
from multiid_bench.reference_model.losses import (
    align_faces_differentiable,
    detect_prediction_landmarks,
    gt_aligned_id_loss,
    prediction_aligned_id_loss,
)

BOXES = np.array([[[4, 6, 30, 32], [34, 20, 60, 46]]], np.float32)


@pytest.fixture(scope="module")
def arcface():
    from multiid_bench.reference_model.arcface_torch import IResNetConfig, build_iresnet

    torch.manual_seed(2)
    return build_iresnet(IResNetConfig(**TINY_ARCFACE)).eval()


def _landmarks(boxes: np.ndarray, shift: float = 0.0) -> np.ndarray:
    size = boxes[..., 2:3] - boxes[..., 0:1]
    return TEMPLATE / 112.0 * size[..., None, :] + boxes[..., None, :2] + shift


def _images():
    g = torch.Generator().manual_seed(3)
    return torch.rand(1, 3, 64, 64, generator=g) * 2 - 1, torch.rand(1, 3, 64, 64, generator=g) * 2 - 1


def test_prediction_landmarks_equal_to_gt_give_the_gt_aligned_loss(arcface):
    pred, gt = _images()
    lm = torch.from_numpy(_landmarks(BOXES))
    valid = torch.ones(1, 2, dtype=torch.bool)
    a = gt_aligned_id_loss(arcface, pred, gt, lm, valid)
    b = prediction_aligned_id_loss(arcface, pred, gt, lm, valid, lm.clone(), valid.clone())
    assert torch.equal(a.loss, b.loss)


def test_prediction_is_aligned_on_the_detected_landmarks_matched_by_iou(arcface):
    """A stand-in detector finds face 1 (shifted 2 px) then face 0 and misses nothing; a second call misses face 0."""
    pred, gt = _images()
    gt_lm = torch.from_numpy(_landmarks(BOXES))
    det_lm = _landmarks(BOXES, shift=2.0)[0][::-1].copy()  # detector order: face 1 first
    det_boxes = BOXES[0][::-1] + 2.0

    def detector(img):
        assert img.dtype == np.uint8 and img.shape == (64, 64, 3)
        return det_boxes, det_lm

    lm, ok = detect_prediction_landmarks(detector, pred, torch.from_numpy(BOXES))
    assert ok.all() and torch.allclose(lm, gt_lm + 2.0)
    valid = torch.ones(1, 2, dtype=torch.bool)
    out = prediction_aligned_id_loss(arcface, pred, gt, gt_lm, valid, lm, ok)
    with torch.no_grad():  # by hand: prediction on the detected landmarks, GT on its own
        q = arcface(align_faces_differentiable(pred, lm)[0])
        t = arcface(align_faces_differentiable(gt, gt_lm)[0])
    torch.testing.assert_close(out.loss[0], 1 - F.cosine_similarity(q, t, dim=-1), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(out.loss, gt_aligned_id_loss(arcface, pred, gt, gt_lm, valid).loss)

    lm1, ok1 = detect_prediction_landmarks(lambda img: (det_boxes[:1], det_lm[:1]), pred, torch.from_numpy(BOXES))
    assert ok1.tolist() == [[False, True]]
    missed = prediction_aligned_id_loss(arcface, pred, gt, gt_lm, valid, lm1, ok1)
    assert missed.loss[0, 0] == 0 and not missed.valid[0, 0] and missed.loss[0, 1] == out.loss[0, 1]


def test_prediction_alignment_needs_a_detector():
    from multiid_bench.reference_model.train_config import TrainConfig

    with pytest.raises(ConfigError, match="data.detector"):
        TrainConfig.from_dict({"loss": {"id_alignment": "prediction", "bank_negatives": 0}})


@pytest.mark.usefixtures("one_thread")
def test_training_step_with_a_detector_that_finds_the_gt_landmarks_equals_the_gt_aligned_step(tmp_path):
    """compute_step end to end (tiny FLUX/VAE/ArcFace): the prediction-aligned path with a stand-in detector
    returning each sample's GT boxes and landmarks gives the GT-aligned step's losses exactly."""
    from accelerate import Accelerator

    from multiid_bench.reference_model.batches import SampleBuilder, TrainStream, collate
    from multiid_bench.reference_model.data import open_source
    from multiid_bench.reference_model.train import Dist, compute_step
    from multiid_bench.reference_model.train_components import TrainModule, build_components

    synth = write_synthetic_data(tmp_path / "data", n_records=2)
    cfg = tiny_config(tmp_path, synth["shards"], None, loss={"lambda_cl": 0.0})
    comp = build_components(cfg, Accelerator(cpu=True).device)
    stream = TrainStream([open_source(p) for p in cfg.data.paths], None, SampleBuilder(cfg.data, None, None), seed=3)
    batch = collate([stream[p] for p in range(2)])
    calls = iter(range(2))

    def detector(img):
        i = next(calls)
        ok = batch["lm_valid"][i].numpy()
        return batch["boxes"][i].numpy()[ok], batch["landmarks"][i].numpy()[ok]

    module = TrainModule(comp.adapter, comp.transformer)
    with torch.no_grad():
        gt = compute_step(comp, module, batch, cfg, 0, Dist(1, 0))
        pred_cfg = cfg.replace(loss={"id_alignment": "prediction"}, data={"detector": "mtcnn"})
        pa = compute_step(comp, module, batch, pred_cfg, 0, Dist(1, 0), pred_detector=detector)
    comp.adapter.set_conditioning(None)
    assert gt.logs["id"] > 0 and pa.logs == gt.logs
