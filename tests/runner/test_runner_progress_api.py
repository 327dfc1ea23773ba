"""Progress output (terminal bar vs plain lines) and the Python API's function adapter and frames, on fakes."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from runner_fakes import FakeWorld, run

from multiid_bench import api
from multiid_bench.errors import ConfigError
from multiid_bench.runner.progress import Progress
from multiid_bench.runner.sources import AdapterSource


def test_plain_lines_every_n_cases_and_at_the_end() -> None:
    out = io.StringIO()  # not a terminal, like a SLURM log
    with Progress("evaluating", stream=out, every=2, seconds=3600) as p:
        p.plan(5, skipped=1)
        for status in ("ok", "failed", "ok", "ok", "not_applicable"):
            p.step(status)
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["evaluating: loading models and data ...", "evaluating (resumed: 1 done): 5 case(s) to run"]
    assert [ln.split(",")[0] for ln in lines[2:]] == ["evaluating: 2/5 cases", "evaluating: 4/5 cases",
                                                       "evaluating: 5/5 cases"]
    assert ", 1 failed," in lines[-1] and "cases/s" in lines[-1]


def test_a_terminal_gets_a_bar_not_lines() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    with Progress("generating", stream=out, every=1) as p:
        p.plan(3)
        for _ in range(3):
            p.step("ok")
    text = out.getvalue()
    assert text.startswith("generating: loading models and data ...\n") and "3/3" in text
    assert "cases, 0 failed" not in text  # no plain progress lines


def test_function_model_rows_frame_and_load_run(world: FakeWorld, tmp_path: Path) -> None:
    seen = []

    def paste_gt(case: api.CaseInput):
        seen.append((case.case_id, case.num_persons, len(case.references), case.seed))
        return None if case.num_persons == 4 else case.gt_image  # None: "not applicable"

    adapter = api._function_adapter(paste_gt, None, ("gt_image",))
    out = run(world, "paste_gt", tmp_path / "o", tmp_path / "c",
              source=AdapterSource(adapter, tmp_path / "o", global_seed=0))
    assert [(cid, k, n) for cid, k, n, _ in seen] == [(c.id, c.num_persons, c.num_persons) for c in world.bench.cases]
    result = api.load_run(tmp_path / "o")
    assert result.summary == out.results and result.exit_code == 0
    df = result.cases_frame()
    assert list(df.case_id) == [c.id for c in world.bench.cases]
    assert list(df.status) == ["ok"] * 5 + ["not_applicable"] and df.face_model.tolist()[:5] == ["fake"] * 5
    assert df.sim_gt.iloc[:5].tolist() == pytest.approx([1.0] * 5, abs=1e-6) and df.protocol.unique().tolist() == ["strict"]
    assert set(api.load_run(tmp_path / "o").cases_frame("paper").protocol) == {"paper"}

    def peek(case: api.CaseInput):
        return case.boxes

    with pytest.raises(ConfigError, match="gt_inputs"):
        api._function_adapter(peek, "peek", ()).generate(world.bench.cases[0], 0)
    boxes = api._function_adapter(peek, "peek", ("boxes",))
    with pytest.raises(ConfigError, match="peek returned tuple for case case00; return a PIL.Image"):
        boxes.generate(world.bench.cases[0], 0)  # asked for: the boxes come back, and a tuple is no image
    arr = api._function_adapter(lambda c: np.asarray(c.gt_image), "arr", ("gt_image",))
    res = arr.generate(world.bench.cases[0], 0)
    assert res.status == "ok" and res.image.size == (72, 72) and res.record.gt_derived_inputs == ("gt_image",)


def test_model_is_a_callable_an_adapter_name_or_an_adapter() -> None:
    from multiid_bench.adapters import get_adapter

    dummy = get_adapter("dummy")
    assert api._adapter(dummy, {}, None, (), 1.5) is dummy
    oracle = api._adapter("copy-reference", {}, None, (), 1.25)  # oracles pad references as scoring does
    assert oracle.name == "copy-reference" and oracle.settings["ref_pad_ratio"] == 1.25
    assert api._adapter("copy-reference", {"ref_pad_ratio": 1.0}, None, (), 1.25).settings["ref_pad_ratio"] == 1.0
    assert api._adapter(lambda case: None, {}, "mine", (), 1.5).name == "mine"
    with pytest.raises(ConfigError, match="callable, an adapter name or an Adapter"):
        api._adapter(42, {}, None, (), 1.5)
