"""From rows to metrics: the paper's trimmed/pooled statistics and the strict plain means with CIs."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from multiid_bench.metrics.stats import bootstrap_ci, trimmed_mean
from multiid_bench.runner.aggregate import aggregate


def row(cid: str, subset: str, a: dict[str, Any], b: dict[str, Any], status: str = "ok", **general: float) -> dict:
    def strict(v: dict[str, Any]) -> dict[str, Any]:
        return {**v, "expected": v.get("expected", 1), "missing": v.get("missing", 0)}

    def paper(v: dict[str, Any]) -> dict[str, Any]:  # Sim(Ref) and blending present: the official run collects it
        return {"sim_ref": 0.5, "blend_ref": 0.1, "blend_gt": 0.1, **v}

    return {"case_id": cid, "subset": subset, "status": status, "general": general,
            "scores": {"paper": {"m1": paper(a), "m2": paper(b)}, "strict": {"m1": strict(a), "m2": strict(b)}}}


def test_paper_pools_models_and_trims_and_strict_means_per_case() -> None:
    rng = np.random.default_rng(0)
    a_vals = list(rng.normal(0.5, 0.05, 12)) + [5.0]  # one outlier that the IQR rule removes
    b_vals = list(rng.normal(0.3, 0.05, 13))
    rows = [row(f"c{i:02d}", "p1" if i % 2 else "p2", {"sim_gt": a}, {"sim_gt": b}, clip_t=0.25 + i / 100)
            for i, (a, b) in enumerate(zip(a_vals, b_vals))]
    rows.append({"case_id": "na", "subset": "p1", "status": "not_applicable", "scores": {}})
    m = aggregate(list(reversed(rows)), ["m1", "m2"], bootstrap_resamples=500)
    paper, strict = m["paper"]["all"], m["strict"]["all"]
    assert paper["sim_gt.m1"]["value"] == pytest.approx(trimmed_mean(a_vals)) and paper["sim_gt.m1"]["n"] == 13
    assert paper["sim_gt.m1"]["outliers_removed"] == 1 and paper["sim_gt.m1"]["ci95"] is None
    assert paper["sim_gt.average"]["value"] == pytest.approx(trimmed_mean(a_vals + b_vals))  # pooled, not mean of means
    assert strict["sim_gt.m1"]["value"] == pytest.approx(np.mean(a_vals))
    per_case = [(a + b) / 2 for a, b in zip(a_vals, b_vals)]
    assert strict["sim_gt.average"]["value"] == pytest.approx(np.mean(per_case))
    # rows are sorted by case id, so the CI is the same whatever order they were written in
    ci = bootstrap_ci([per_case[i] for i in np.argsort([f"c{i:02d}" for i in range(13)])], n_resamples=500)
    assert strict["sim_gt.average"]["ci95"] == pytest.approx(list(ci))
    assert set(m["paper"]) == {"p1", "p2", "all"} and m["paper"]["p1"]["sim_gt.m1"]["n"] == 6
    assert paper["clip_t"]["value"] == pytest.approx(trimmed_mean([0.25 + i / 100 for i in range(13)]))
    assert strict["clip_t"]["value"] == pytest.approx(np.mean([0.25 + i / 100 for i in range(13)]))


def test_missing_values_stay_missing_and_failure_rate_is_pooled() -> None:
    rows = [
        row("a", "p2", {"sim_gt": None, "expected": 2, "missing": 2}, {"sim_gt": 0.4, "expected": 2, "missing": 1}, "failed"),
        row("b", "p2", {"sim_gt": 0.8, "expected": 2, "missing": 0}, {"sim_gt": None, "expected": 2, "missing": 0}),
    ]
    m = aggregate(rows, ["m1", "m2"], bootstrap_resamples=100)
    s = m["strict"]["p2"]
    assert s["sim_gt.m1"]["value"] == 0.8 and s["sim_gt.m1"]["n"] == 1
    assert s["face_failure_rate.m1"]["value"] == 0.5 and s["face_failure_rate.m2"]["value"] == 0.25
    assert s["face_failure_rate.average"]["value"] == pytest.approx(3 / 8)
    assert s["copy_paste.m1"]["value"] is None and s["copy_paste.m1"]["n"] == 0  # never 0 for "no data"
    assert m["paper"]["p2"]["sim_gt.average"]["n"] == 2


def test_paper_ranked_copy_paste_applies_the_papers_filters() -> None:
    """Tables 1/2 keep cases with Sim(GT) > 0.40 (p1) / > 0.35 (p2, p3); Table 5 per model (FaceNet 0.45)."""
    from multiid_bench.runner.aggregate import aggregate

    def row(cid: str, subset: str, sim: float, cp: float) -> dict:
        s = {"sim_gt": sim, "sim_ref": 0.5, "copy_paste": cp, "blend_gt": 0.1, "blend_ref": 0.1}
        return {"case_id": cid, "subset": subset, "status": "ok", "scores": {"paper": {"facenet": s}, "strict": {}}}

    rows = [row("a", "p1", 0.41, 0.1), row("b", "p1", 0.40, 0.9), row("c", "p2", 0.36, 0.2),
            row("d", "p2", 0.30, 0.8), row("e", "p2", 0.50, 0.3)]
    out = aggregate(rows, ["facenet"])["paper"]
    assert out["p1"]["copy_paste_ranked.facenet"]["value"] == 0.1  # 0.40 is not > 0.40
    assert out["p2"]["copy_paste_ranked.facenet"]["value"] == pytest.approx(0.25)  # c and e
    assert out["all"]["copy_paste_ranked.facenet"]["n"] == 3
    assert out["p2"]["copy_paste_ranked_fm.facenet"]["value"] == 0.3  # only e has Sim(GT) > 0.45
    assert out["p2"]["copy_paste.facenet"]["n"] == 3  # the unfiltered metric is untouched
