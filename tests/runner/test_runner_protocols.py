"""Per-case scoring under the paper and strict protocols, on hand-built embeddings."""
from __future__ import annotations

import numpy as np
import pytest

from multiid_bench.metrics.identity import compute_copy_paste
from multiid_bench.runner.extract import FaceSet
from multiid_bench.runner.protocols import box_iou, score_paper, score_strict


def fs(rows: list[list[float]], boxes: list[tuple[float, float, float, float]] | None = None) -> FaceSet:
    emb = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1) if rows else np.zeros((0, 3), np.float32)
    boxes = boxes or [(10.0 * i, 0.0, 10.0 * i + 8, 8.0) for i in range(len(rows))]
    return FaceSet([{"box": list(b), "score": 0.9, "landmarks": []} for b in boxes], emb)


A, B, C = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]
A_REF, B_REF = [0.9, 0.3, 0.0], [0.3, 0.9, 0.1]


def test_box_iou_hand_computed() -> None:
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]]))
    assert iou[0, 0] == pytest.approx(50 / 150) and iou[0, 1] == 0.0


def test_strict_gt_copy_is_exactly_minus_one_and_ref_copy_plus_one() -> None:
    gt, refs = fs([A, B]), [fs([A_REF]), fs([B_REF])]
    boxes = [f["box"] for f in gt.faces]
    s = score_strict(fs([B, A], boxes=[gt.faces[1]["box"], gt.faces[0]["box"]]), gt, refs, boxes)
    assert s["sim_gt"] == 1.0 and s["copy_paste"] == -1.0 and s["missing"] == 0
    assert [d["gen_face"] for d in s["identities"]] == [1, 0]  # identity 0 (A) is generated face 1
    r = score_strict(fs([A_REF, B_REF]), gt, refs, boxes)
    assert r["sim_ref"] == pytest.approx(1.0, abs=1e-12) and r["copy_paste"] == pytest.approx(1.0, abs=1e-12)


def test_strict_missing_face_is_a_failure_scored_as_documented() -> None:
    gt, refs = fs([A, B]), [fs([A_REF]), fs([B_REF])]
    boxes = [f["box"] for f in gt.faces]
    s = score_strict(fs([A]), gt, refs, boxes, missing_score=0.0)
    assert (s["expected"], s["found"], s["missing"]) == (2, 1, 1)
    missing = [d for d in s["identities"] if d["missing"]]
    assert len(missing) == 1 and missing[0]["identity"] == 1 and missing[0]["copy_paste"] is None
    assert s["sim_gt"] == pytest.approx((1.0 + 0.0) / 2)  # the missing identity scores 0, not skipped
    assert s["copy_paste"] == -1.0  # copy-paste over present identities only
    # fewer faces can never raise Sim(GT): the paper protocol would report 1.0 here
    p = score_paper(fs([A]), gt, refs, subset="p2", ref_policy="top_face")
    assert p["sim_gt"] == 1.0 and p["copy_paste"] is None


def test_strict_uses_boxes_to_ignore_gt_bystanders() -> None:
    bystander = [0.6, 0.6, 0.5]
    gt = fs([bystander, A], boxes=[(0, 0, 8, 8), (50, 50, 70, 70)])
    s = score_strict(fs([A]), gt, [fs([A_REF])], [(48, 48, 72, 72)])
    assert s["identities"][0]["gt_face"] == 1 and s["sim_gt"] == 1.0 and s["copy_paste"] == -1.0
    p = score_paper(fs([A]), gt, [fs([A_REF])], subset="p1", ref_policy="top_face")
    assert p["copy_paste"] is None and p["n_gt"] == 2  # paper: counts differ -> excluded


def test_strict_without_boxes_resolves_only_unambiguous_gt() -> None:
    gt, refs = fs([B, A]), [fs([A_REF]), fs([B_REF])]
    s = score_strict(fs([A, B]), gt, refs, [])
    assert [d["gt_face"] for d in s["identities"]] == [1, 0] and s["sim_gt"] == 1.0
    s3 = score_strict(fs([A, B]), fs([A, B, C]), refs, [])
    assert all(d["gt_face"] is None for d in s3["identities"]) and s3["sim_gt"] is None
    assert s3["sim_ref"] is not None  # references still give Sim(Ref)


def test_paper_reference_policies_and_p1_blending() -> None:
    gt, refs = fs([A, B]), [fs([A_REF]), fs([])]
    all_or_none = score_paper(fs([A, B]), gt, refs, subset="p2", ref_policy="top_face")
    drop = score_paper(fs([A, B]), gt, refs, subset="p2", ref_policy="top_face_drop_missing")
    assert all_or_none["sim_ref"] is None and all_or_none["refs_without_face"] == [1]
    assert drop["sim_ref"] is not None and drop["n_ref"] == 1
    p1 = score_paper(fs([A, B]), fs([A]), [fs([A_REF])], subset="p1", ref_policy="top_face")
    assert p1["blend_gt"] == 0.0 and p1["blend_ref"] == 0.0  # official p1 setup forces 0.0
    with pytest.raises(ValueError, match="unknown reference policy"):
        score_paper(fs([A]), fs([A]), [fs([A_REF])], subset="p1", ref_policy="nope")


def test_paper_copy_paste_uses_the_plus_eps_normalisation() -> None:
    g = [[0.02, 0.0, 0.0]]  # a small norm makes the (|x| + 1e-6) offset visible
    r = [[0.0, 0.02, 0.0]]
    p = score_paper(fs(g), fs(g), [fs(r)], subset="p1", ref_policy="top_face", norm_eps=1e-6)
    s = score_strict(fs(g), fs(g), [fs(r)], [(0, 0, 8, 8)])
    assert s["copy_paste"] == -1.0
    expected = compute_copy_paste(np.array(g[0]), np.array(g[0]), np.array(r[0]), norm_eps=1e-6)
    assert p["copy_paste"] == pytest.approx(expected, abs=1e-7) and p["copy_paste"] > -1.0
