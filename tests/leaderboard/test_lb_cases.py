"""Case rows in the runner's layout (multiid_bench/runner/evaluation.py) read by the report and correlate."""
from __future__ import annotations

import base64
import io
import re

import numpy as np
from lb_fixtures import REF_RGB, base_results, write_run
from PIL import Image

from multiid_bench.leaderboard.cases import case_view
from multiid_bench.leaderboard.report import build_report


def _runner_row(root, ref_name: str) -> dict:
    face = {"box": [130.0, 130.0, 250.0, 250.0], "score": 0.99, "landmarks": [[1.0, 2.0]] * 5}
    return {
        "row_schema": 1, "case_id": "p2_0007", "subset": "p2", "num_persons": 2, "status": "failed",
        "reason": "2 faces expected, 1 found", "notes": [], "seed": 3,
        "generation": {"prompt": "two friends at a cafe", "image": "images/p2_0007.png"},
        "images": {"generated": {"path": str(root / ref_name), "sha256": "x"}, "gt": None,
                   "refs": [{"path": ref_name, "sha256": "y", "pad_ratio": 1.5}, {"path": "gone.png", "sha256": "z",
                                                                                 "pad_ratio": 1.5}]},
        "detections": {"scrfd": {"generated": [face], "gt": None, "refs": [[face], None]}},
        "scores": {"paper": {"arcface": {"sim_gt": 0.31, "sim_ref": 0.5, "copy_paste": None, "blend_gt": 0.1,
                                         "blend_ref": 0.2, "gt_pairs": [[0, 0]], "n_gen": 1, "refs_without_face": []}},
                   "strict": {"arcface": {"sim_gt": 0.2, "missing": 1, "expected": 2, "identities": []}}},
        "general": {"clip_t": 0.29, "aesthetic": None},
    }


def test_case_view_reads_the_runner_layout(tmp_path) -> None:
    Image.new("RGB", (240, 240), REF_RGB).save(tmp_path / "ref.png")
    c = case_view(_runner_row(tmp_path, "ref.png"), tmp_path, "paper")
    assert (c.id, c.subset, c.status, c.reason, c.prompt) == ("p2_0007", "p2", "failed", "2 faces expected, 1 found",
                                                              "two friends at a cafe")
    assert c.generated == tmp_path / "ref.png" and c.gt is None
    assert c.refs == [tmp_path / "ref.png", tmp_path / "gone.png"] and c.ref_pads == [1.5, 1.5]
    assert set(c.faces) == {"generated", "ref_0"} and c.faces["ref_0"]["scrfd"][0]["box"][0] == 130.0
    # only card metrics, per face model; counts and pair lists are not metrics; None stays None
    assert c.metrics == {"sim_gt.arcface": 0.31, "sim_ref.arcface": 0.5, "copy_paste.arcface": None,
                         "blend_gt.arcface": 0.1, "blend_ref.arcface": 0.2, "clip_t": 0.29, "aesthetic": None}
    assert case_view(_runner_row(tmp_path, "ref.png"), tmp_path, "strict").metrics["sim_gt.arcface"] == 0.2


def test_report_shows_padded_reference_with_its_box_and_missing_files(tmp_path) -> None:
    root = tmp_path / "run"
    root.mkdir()
    Image.new("RGB", (240, 240), REF_RGB).save(root / "ref.png")
    write_run(root, base_results(), [_runner_row(root, "ref.png")])
    html = build_report(root, tmp_path / "r.html", include_paper=False).read_text()
    assert "2 faces expected, 1 found" in html and "shown padded ×1.5 as detected" in html
    assert "not recorded" in html  # the GT of this case
    assert "cannot read gone.png" in html  # a missing reference is named, not fatal
    src = re.search(r'<img alt="ref 1" src="data:image/jpeg;base64,([^"]+)"', html).group(1)
    arr = np.asarray(Image.open(io.BytesIO(base64.b64decode(src))).convert("RGB")).astype(int)
    assert arr.shape[:2] == (224, 224)
    assert (arr[:10, :10] < 20).all()  # the black padding the detector saw (240 -> 360 canvas)
    # box (130..250 of 360) drawn in the detector colour, inside the padded canvas
    y = int(190 * 224 / 360)
    x = int(130 * 224 / 360)
    assert (np.abs(arr[y, x - 1:x + 3] - [0, 229, 255]) < 60).all(axis=-1).any()
