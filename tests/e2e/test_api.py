"""``import multiid_bench as mb``: evaluate a Python function, score its images, load the run back (demo, offline)."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import multiid_bench as mb
from multiid_bench.errors import ConfigError

pytestmark = pytest.mark.slow


def test_evaluate_a_function_then_score_and_load_the_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    seen: list[tuple] = []

    def my_generate(case):  # the ground truth itself, asked for explicitly: Sim(GT) = 1 on every case
        seen.append((case.case_id, case.subset, case.num_persons, [r.size for r in case.references]))
        return case.gt_image

    old = os.umask(0o022)
    try:
        result = mb.evaluate(my_generate, bench="demo", profile="offline", out=tmp_path / "run", limit=3,
                             device="cpu", cache_dir=str(tmp_path / "cache"), gt_inputs=("gt_image",))
    finally:
        os.umask(old)
    assert result.complete and result.exit_code == 0
    s = result.summary
    assert s == json.loads((tmp_path / "run" / "results.json").read_text())
    assert s["model"] == "my_generate" and s["counts"]["ok"] == s["counts"]["expected"] == 3 == len(seen)
    # references as the paper's generator saw them: tight square face crops, one per person
    assert all(len(sizes) == k and all(w == h for w, h in sizes) for _, _, k, sizes in seen)
    df = result.cases_frame("strict")
    assert list(df.case_id) == [c for c, *_ in seen] and set(df.face_model) == {"dlib"}
    assert df.sim_gt.tolist() == pytest.approx([1.0] * 3, abs=1e-6) and (df.copy_paste < -0.9).all()
    # the paper protocol (the default frame) scores the JPEG bytes the official pipeline stored: the generated
    # copy went through one q75 round trip and the GT through two, so Sim(GT) is high but not always exactly 1
    # (JPEG re-encoding at one quality is close to idempotent: a photo may come back the same)
    paper = result.cases_frame()
    assert ((paper.sim_gt > 0.99) & (paper.sim_gt <= 1.0 + 1e-9)).all() and (paper.sim_gt < 1.0 - 1e-4).any()
    assert (paper.copy_paste < 0).all()  # still on the GT side; JPEG noise is large next to a 0.15 rad GT-ref gap
    record = json.loads((tmp_path / "run" / "generations.jsonl").read_text().splitlines()[0])
    assert record["gt_derived_inputs"] == ["gt_image"] and record["adapter"] == "my_generate"
    for f in ("results.json", "run.json", f"images/{seen[0][0]}.png"):
        assert stat.S_IMODE((tmp_path / "run" / f).stat().st_mode) == 0o644, f
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "evaluating: loading models and data ..." and err[-1].startswith("evaluating: 3/3 cases, 0 failed")
    env = s["environment"]
    assert env["python"] and env["os"] and {"pandas", "scipy", "datasets", "huggingface_hub"} <= set(s["packages"])

    again = mb.load_run(tmp_path / "run")
    assert again.summary == s and again.cases_frame("strict").equals(df) and again.cases_frame().equals(paper)
    scored = mb.score(tmp_path / "run", bench="demo", profile="offline", out=tmp_path / "scored", limit=3,
                      device="cpu", cache_dir=str(tmp_path / "cache"), progress=False)
    assert scored.cases_frame().sim_gt.tolist() == paper.sim_gt.tolist()
    assert scored.cases_frame("strict").sim_gt.tolist() == df.sim_gt.tolist()

    def peeks(case):
        return case.boxes  # GT-derived, not asked for: the run stops with a message saying how to ask

    with pytest.raises(ConfigError, match=r"gt_inputs=\('boxes',\)"):
        mb.evaluate(peeks, bench="demo", profile="offline", out=tmp_path / "peek", limit=1, device="cpu",
                    cache_dir=str(tmp_path / "cache"), progress=False)
