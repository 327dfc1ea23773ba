"""Paper protocol = what the official run collects: one test per official quirk (docs/protocols.md table).

Each test builds the per-case rows the runner writes and checks the exact exclusion record and that the
paper aggregate drops exactly those values while the strict one keeps every case.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from runner_fakes import FakeWorld, rows_of, run

from multiid_bench.runner.aggregate import GENERAL_METRICS, aggregate, paper_excluded
from multiid_bench.runner.extract import FaceSet
from multiid_bench.runner.protocols import paper_exclusions, score_paper

POLICY = {"arcface": "all-or-none", "facenet": "drop-missing", "adaface": "drop-missing"}


def full(model: str, v: float = 0.5, **over: Any) -> dict[str, Any]:
    s = {"sim_gt": v, "sim_ref": v, "copy_paste": -0.5, "blend_gt": 0.1, "blend_ref": 0.1, "n_ref": 2,
         "refs_without_face": [], "refs_with_several_faces": [], "ref_policy": POLICY[model]}
    s.update(over)
    return s


def row(cid: str, subset: str = "p2", gt_mode: str = "RGB", **scores: dict[str, Any]) -> dict[str, Any]:
    return {"case_id": cid, "subset": subset, "status": "ok", "general": {"clip_t": 0.3},
            "images": {"generated": {"mode": "RGB"}, "gt": {"mode": gt_mode}},
            "scores": {"paper": scores, "strict": {m: {**s, "expected": 2, "missing": 0} for m, s in scores.items()}}}


MODELS = ["arcface", "facenet", "adaface"]


def _all_present(models: list[str] = MODELS) -> list[str]:
    order = [m for m in ("arcface", "facenet", "adaface") if m in models]
    return [f"{k}.{m}" for m in order for k in ("sim_gt", "sim_ref", "copy_paste", "blend_gt", "blend_ref")] + ["clip_t"]


def test_regular_case_is_not_excluded() -> None:
    assert paper_exclusions(row("ok", **{m: full(m) for m in MODELS}), MODELS, GENERAL_METRICS) == []


def test_grayscale_gt_crashes_the_official_case() -> None:
    r = row("gray", gt_mode="L", **{m: full(m) for m in MODELS})
    (e,) = paper_exclusions(r, MODELS, GENERAL_METRICS)
    assert e["case_id"] == "gray" and e["metrics"] == _all_present()
    assert e["reason"].startswith("GT image is stored in mode L: the official code reads it without converting")
    rgba = row("rgba", gt_mode="RGBA", **{m: full(m) for m in MODELS})
    assert paper_exclusions(rgba, MODELS, GENERAL_METRICS) == []  # 4 channels: read (alpha dropped)


def test_reference_with_two_faces_crashes_under_facexlib_models() -> None:
    r = row("two", **{m: full(m, refs_with_several_faces=[1] if m != "arcface" else [1]) for m in MODELS})
    (e,) = paper_exclusions(r, MODELS, GENERAL_METRICS)
    assert e["metrics"] == _all_present() and e["reason"].startswith("facenet: reference 2 has several faces")
    # ArcFace alone takes the top face: nothing lost
    assert paper_exclusions(row("two", arcface=full("arcface", refs_with_several_faces=[1])), ["arcface"]) == []


def test_no_reference_face_crashes_under_facexlib_but_not_under_arcface() -> None:
    none = dict(n_ref=0, sim_ref=None, copy_paste=None, blend_ref=None, refs_without_face=[0, 1])
    r = row("noref", arcface=full("arcface"), facenet=full("facenet", **none), adaface=full("adaface"))
    (e,) = paper_exclusions(r, MODELS, GENERAL_METRICS)
    assert e["reason"].startswith("facenet: no face found in any reference")
    assert e["metrics"] == [k for k in _all_present() if k not in ("sim_ref.facenet", "copy_paste.facenet",
                                                                   "blend_ref.facenet")]
    # all-or-none (ArcFace): the reference set is void, Sim(Ref) missing for ArcFace only; case kept
    r = row("noref", arcface=full("arcface", **none), facenet=full("facenet"), adaface=full("adaface"))
    assert paper_exclusions(r, MODELS, GENERAL_METRICS) == []


def test_no_model_with_sim_ref_drops_sim_gt_and_clip() -> None:
    gone = dict(sim_ref=None, copy_paste=None, blend_ref=None)
    r = row("nosr", arcface=full("arcface", **gone))
    assert paper_exclusions(r, ["arcface"], GENERAL_METRICS) == [{
        "case_id": "nosr", "metrics": ["sim_gt.arcface", "blend_gt.arcface", "clip_t"],
        "reason": "no face model produced Sim(Ref): the official run counts the case as failed and drops its "
                  "Sim(GT) and CLIP/aesthetic values too (eval-protocol 2, step 6)"}]


def test_one_by_one_matrix_partial_collection_in_p2() -> None:
    # FaceNet found one generated face and one GT face: blend_gt undefined -> float(None) after Sim(GT)
    r = row("part", arcface=full("arcface", 0.7), facenet=full("facenet", 0.6, blend_gt=None, copy_paste=None),
            adaface=full("adaface", 0.5))
    (e,) = paper_exclusions(r, MODELS, GENERAL_METRICS)
    assert e["metrics"] == ["sim_gt.adaface", "sim_ref.adaface", "copy_paste.adaface", "blend_gt.adaface",
                            "blend_ref.adaface", "clip_t"]
    assert e["reason"].startswith("facenet: a 1x1 similarity matrix leaves blend_gt undefined")
    # blend_ref undefined: crash right after Sim(Ref) -> that model's Sim(GT) side is lost too
    r2 = row("part2", arcface=full("arcface", 0.7, blend_ref=None), facenet=full("facenet"), adaface=full("adaface"))
    (e2,) = paper_exclusions(r2, MODELS, GENERAL_METRICS)
    assert e2["metrics"][:3] == ["sim_gt.arcface", "copy_paste.arcface", "blend_gt.arcface"]
    assert "sim_ref.arcface" not in e2["metrics"] and len(e2["metrics"]) == 3 + 10 + 1
    # p1: the official p1 setup forces blending to 0.0, nothing raises
    p1 = row("p1", "p1", facenet=full("facenet", blend_gt=None, blend_ref=None))
    assert paper_exclusions(p1, ["facenet"], GENERAL_METRICS) == []


def test_aggregate_drops_exactly_the_excluded_values_and_strict_keeps_all() -> None:
    rows = [row("a", arcface=full("arcface", 0.7), facenet=full("facenet", 0.6, blend_gt=None), adaface=full("adaface", 0.5)),
            row("b", gt_mode="L", **{m: full(m, 0.2) for m in MODELS}),
            row("c", **{m: full(m, 0.4) for m in MODELS})]
    m = aggregate(rows, MODELS, bootstrap_resamples=50)
    p, s = m["paper"]["p2"], m["strict"]["p2"]
    assert p["sim_gt.arcface"]["n"] == 2 and p["sim_gt.arcface"]["value"] == pytest.approx(0.55)  # a, c
    assert p["sim_gt.facenet"]["n"] == 2  # a's FaceNet Sim(GT) was appended before the crash
    assert p["copy_paste.facenet"]["n"] == 1 and p["sim_gt.adaface"]["n"] == 1  # only c
    assert p["clip_t"]["n"] == 1
    assert s["sim_gt.arcface"]["n"] == 3 and s["clip_t"]["n"] == 3  # strict keeps every case
    assert [e["case_id"] for e in paper_excluded(rows, MODELS)] == ["a", "b"]


def test_score_paper_reports_references_with_several_faces() -> None:
    def fs(n: int) -> FaceSet:
        return FaceSet([{"box": [0, 0, 1, 1], "score": 0.9}] * n, np.eye(4, dtype=np.float32)[:n])

    s = score_paper(fs(1), fs(1), [fs(1), fs(2), fs(0)], subset="p3", ref_policy="top_face_drop_missing")
    assert s["refs_with_several_faces"] == [1] and s["refs_without_face"] == [2] and s["ref_policy"] == "drop-missing"


def test_results_json_lists_exclusions_per_protocol(world: FakeWorld, tmp_path: Path) -> None:
    from PIL import Image

    gt = world.bench.cases[2].gt  # a p2 case: store its GT as grayscale
    Image.open(gt).convert("L").save(gt)
    out = tmp_path / "out"
    run(world, "ground-truth", out, tmp_path / "cache")
    results = json.loads((out / "results.json").read_text())
    assert results["counts"]["excluded"] == {"paper": 1, "strict": 0}
    (e,) = results["excluded"]["paper"]
    assert e["case_id"] == "case02" and e["reason"].startswith("GT image is stored in mode L")
    assert results["excluded"]["strict"] == []
    assert results["metrics"]["paper"]["p2"]["sim_gt.fake"]["n"] == 1
    assert results["metrics"]["strict"]["p2"]["sim_gt.fake"]["n"] == 2


def test_filtered_and_unfiltered_copy_paste_are_two_columns_in_both_protocols() -> None:
    from multiid_bench.runner.summary import summary_table

    rows = [row(c, "p2", facenet=full("facenet", sim, copy_paste=cp))
            for c, sim, cp in (("a", 0.36, 0.2), ("b", 0.30, 0.8), ("c", 0.50, 0.4))]
    m = aggregate(rows, ["facenet"], bootstrap_resamples=50)
    for proto in ("paper", "strict"):
        assert m[proto]["p2"]["copy_paste.facenet"]["n"] == 3
        assert m[proto]["p2"]["copy_paste_ranked.facenet"]["n"] == 2  # Sim(GT) > 0.35: a and c
    assert m["strict"]["p2"]["copy_paste.facenet"]["value"] == pytest.approx(1.4 / 3)
    assert m["strict"]["p2"]["copy_paste_ranked.facenet"]["value"] == pytest.approx(0.3)
    assert m["strict"]["p2"]["copy_paste_ranked.average"]["value"] == pytest.approx(0.3)
    assert m["paper"]["p2"]["copy_paste_ranked.facenet"]["value"] == pytest.approx(0.3)
    results = {"metrics": m, "face_models": [{"name": "facenet"}]}
    for proto in ("paper", "strict"):
        header, table = summary_table(results, proto)
        assert header[5:7] == ["CP all cases ↓", "CP Sim(GT)-filtered (paper) ↓"]
        assert [c[:6] for c in table[0][5:7]] == ["0.4667", "0.3000"]


def test_paper_pixels_official_scores_jpeg_round_trips(world: FakeWorld, tmp_path: Path) -> None:
    """paper_pixels="official" (the default): paper sees the pixels the official scripts stored (PIL JPEG q75:
    generated once, GT twice, references once); strict, and the paper protocol under "as-given", see the files."""
    from PIL import Image

    from multiid_bench.images import jpeg_round_trip, load_rgb_array
    from multiid_bench.runner.evaluation import _paper_specs
    from multiid_bench.runner.extract import ImageSpec

    case = world.bench.cases[2]
    gen_png = tmp_path / "g.png"
    Image.open(case.gt).save(gen_png)
    g, t, rs = _paper_specs(case, str(gen_png), _cfg(paper_pixels="official"))
    assert (g.jpeg, t.jpeg, [r.jpeg for r in rs]) == (1, 2, [1, 1])
    gen_jpg = tmp_path / "g.jpg"
    Image.open(case.gt).save(gen_jpg)
    assert _paper_specs(case, str(gen_jpg), _cfg(paper_pixels="official"))[0].jpeg == 0  # already stored as JPEG
    assert _paper_specs(case, str(gen_png), _cfg())[0].jpeg == 1  # default: as the official pipeline stored it
    assert _paper_specs(case, str(gen_png), _cfg(paper_pixels="as-given"))[0].jpeg == 0
    # the view the extractor builds is exactly Pillow's default JPEG round trip of the decoded file
    from multiid_bench.runner.cache import FeatureCache
    from multiid_bench.runner.extract import FeatureExtractor, ViewResult

    ex = FeatureExtractor(world.backends(), FeatureCache(tmp_path / "c"))
    spec = ImageSpec(str(case.gt), 1.0, 2)
    arr = ex._array(spec, {spec: ViewResult()}, {})
    np.testing.assert_array_equal(arr, jpeg_round_trip(load_rgb_array(case.gt), 2))
    assert not np.array_equal(arr, load_rgb_array(case.gt))
    out = tmp_path / "out"
    run(world, "ground-truth", out, tmp_path / "cache", paper_pixels="official")
    row = rows_of(out)["case02"]
    assert row["paper_pixels"] == {"generated_jpeg": 1, "gt_jpeg": 2, "refs_jpeg": [1, 1]}
    assert json.loads((out / "results.json").read_text())["config"]["paper_pixels"] == "official"
    plain = tmp_path / "plain"
    run(world, "ground-truth", plain, tmp_path / "cache2", paper_pixels="as-given")
    other = rows_of(plain)["case02"]
    assert "paper_pixels" not in other
    assert other["scores"]["strict"] == row["scores"]["strict"]  # strict always scores the files as given
    assert other["scores"]["paper"]["fake"]["sim_ref"] != row["scores"]["paper"]["fake"]["sim_ref"]


def _cfg(**kw: Any) -> Any:
    from multiid_bench.runner.config import RunConfig

    return RunConfig(model="x", **kw)
