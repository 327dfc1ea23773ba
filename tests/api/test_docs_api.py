"""docs/api.md is a notebook session that works: every ```python block runs, in order, in one namespace."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_page_has_the_six_parts() -> None:
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) == 9
    for needle in ("mb.evaluate(my_generate", "mb.evaluate(pipe", "mb.IdentityScore(", "log_to=(", "run.headline()",
                   "export_run(", 'mb.load_run("hf://', "FaceModelPlugin(", "CaseMetricPlugin("):
        assert any(needle in b for b in blocks), needle


@pytest.mark.slow
def test_every_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                            hf_dataset_cache) -> None:
    from multiid_bench.leaderboard.hub import RUN_FILES

    monkeypatch.chdir(tmp_path)  # the snippets write runs/... relative to the working folder
    namespace: dict = {"__name__": "docs_api"}
    for i, block in enumerate(python_blocks(DOC.read_text())):
        if 'load_run("hf://alice/mine-multiid' in block:  # the Hub, played by a cache holding the exported folder
            exported = tmp_path / "runs" / "mine-dataset"
            hf_dataset_cache("alice/mine-multiid", exported, tuple(f for f in RUN_FILES if (exported / f).is_file()))
        exec(compile(block, f"docs/api.md block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "Run(model='my_generate', bench='demo', profile='offline'" in out
    assert "Run(model='StableDiffusionImg2ImgPipeline'" in out
    assert namespace["numbers"]["sim_ref.dlib"] > 0.5  # the stand-in model returns the reference itself
    assert set(namespace["table"].columns) >= {"metric", "face_model", "value", "ci_lo", "ci_hi", "n"}
    assert (tmp_path / "runs" / "tiny-sd" / "run.json").is_file()
    assert namespace["metric"].logger.where == {"tensorboard": "runs/val-tb"}
    assert len(list((tmp_path / "runs" / "val-tb").glob("events.out.tfevents.*"))) == 1
    assert "Run(model='my_generate', bench='demo'" in repr(namespace["pushed"])
