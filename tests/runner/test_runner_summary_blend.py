"""summary.md / the printed summary: Blend(Ref) next to Blend(GT); single-person Blending is N/A, not 0.0."""
from __future__ import annotations

from multiid_bench.runner.summary import summary_table


def _entry(v: float) -> dict:
    return {"value": v, "n": 3, "ci95": None, "statistic": "iqr_trimmed_mean"}


def test_blending_columns_and_single_person_na() -> None:
    block = {"sim_gt.arcface": _entry(0.5), "blend_gt.arcface": _entry(0.0), "blend_ref.arcface": _entry(0.0)}
    two = {"sim_gt.arcface": _entry(0.5), "blend_gt.arcface": _entry(0.21), "blend_ref.arcface": _entry(0.19)}
    results = {"face_models": [{"name": "arcface"}],
               "metrics": {"paper": {"p1": block, "p2": two}}}
    header, rows = summary_table(results, "paper")
    gt, ref = header.index("Blend(GT) ↓"), header.index("Blend(Ref) ↓")
    p1 = next(r for r in rows if r[0] == "p1" and r[1] == "arcface")
    p2 = next(r for r in rows if r[0] == "p2" and r[1] == "arcface")
    assert (p1[gt], p1[ref]) == ("N/A", "N/A")
    assert (p2[gt], p2[ref]) == ("0.2100", "0.1900")
