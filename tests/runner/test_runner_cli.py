"""``mbench evaluate`` / ``mbench score`` through the real CLI, with the fake face world plugged in."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from runner_fakes import FakeWorld

from multiid_bench.cli._errors import run_with_error_mapping
from multiid_bench.cli.main import cli


def write_manifest(world: FakeWorld) -> Path:
    lines = []
    for c in world.bench.cases:
        rec = {"id": c.id, "prompt": c.prompt, "gt": c.gt.name, "refs": [r.name for r in c.refs],  # type: ignore[union-attr]
               "boxes": [list(b) for b in c.boxes], "num_persons": c.num_persons}
        lines.append(json.dumps(rec))
    lines.insert(2, '{"id": "broken", "prompt": "x", "refs": "missing.png"')  # unreadable line
    path = world.root / "bench.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fake_backends(world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> FakeWorld:
    import multiid_bench.runner.backends as backends

    monkeypatch.setattr(backends, "build_backends", lambda config, profile=None: ({"name": "fake"}, world.backends()))
    return world


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_evaluate_then_score_the_same_images(fake_backends: FakeWorld, tmp_path: Path) -> None:
    bench = write_manifest(fake_backends)
    common = ["--bench", str(bench), "--profile", "offline", "--protocol", "strict", "--device", "cpu",
              "--cache-dir", str(tmp_path / "cache"), "--ref-source", "raw", "--no-scorers"]
    res = invoke("evaluate", "--model", "gt", "--out", str(tmp_path / "ev"), *common)
    assert res.exit_code == 4, res.output  # the broken manifest line is a failed case
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert results["model"] == "ground-truth" and results["counts"]["failed"] == 1
    assert results["counts"]["expected"] == len(fake_backends.bench.cases) + 1
    assert "ground-truth on" in res.output and "| all" not in res.output  # a rich table, not markdown
    assert results["metrics"]["strict"]["all"]["sim_gt.fake"]["value"] == pytest.approx(1.0, abs=1e-6)
    assert results["scorers"]["clip"]["status"] == "disabled"

    res2 = invoke("score", "--images", str(tmp_path / "ev"), "--name", "gt-again", "--out", str(tmp_path / "sc"), *common)
    assert res2.exit_code == 4, res2.output
    again = json.loads((tmp_path / "sc" / "results.json").read_text())
    assert again["model"] == "gt-again" and again["metrics"] == results["metrics"]


def test_missing_weights_exit_3_before_any_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import multiid_bench.faces as faces

    def boom(*a: Any, **k: Any) -> None:
        raise AssertionError("a model was loaded before the preflight")

    monkeypatch.setattr(faces, "load_face_model", boom)
    monkeypatch.setattr(faces, "load_detector", boom)
    monkeypatch.setenv("MBENCH_HOME", str(tmp_path / "empty-cache"))
    code = run_with_error_mapping(cli, ["evaluate", "--model", "ground-truth", "--bench", "demo", "--profile", "paper",
                                        "--offline", "--device", "cpu", "--out", str(tmp_path / "o")], debug=False)
    assert code == 3
    err = capsys.readouterr().err
    assert "mbench weights download" in err and "buffalo" in err


def test_missing_bench_exits_3_and_bad_flags_exit_2(tmp_path: Path) -> None:
    argv = ["evaluate", "--model", "ground-truth", "--bench", str(tmp_path / "nope.jsonl"), "--profile", "offline",
            "--device", "cpu", "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")]
    assert run_with_error_mapping(cli, argv, debug=False) == 3
    bad = ["evaluate", "--model", "ground-truth", "--subset", "p7", "--device", "cpu"]
    assert run_with_error_mapping(cli, bad, debug=False) == 2


def test_cli_module_imports_no_torch() -> None:
    code = ("import sys; import multiid_bench.cli.evaluate, multiid_bench.runner; "
            "print(sorted(m for m in ('torch', 'cv2', 'insightface', 'open_clip') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_torchrun_ranks_split_and_merge(fake_backends: FakeWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = write_manifest(fake_backends)
    common = ["evaluate", "--model", "ground-truth", "--bench", str(bench), "--profile", "offline", "--device", "cpu",
              "--cache-dir", str(tmp_path / "cache"), "--ref-source", "raw", "--no-scorers"]
    single = invoke(*common, "--out", str(tmp_path / "single"))
    assert single.exit_code == 4
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", "2")
        invoke(*common, "--out", str(tmp_path / "ranks"))
    files = sorted(p.name for p in (tmp_path / "ranks").glob("cases*.jsonl"))
    assert files == ["cases.shard-000-of-002.jsonl", "cases.shard-001-of-002.jsonl"]
    a = json.loads((tmp_path / "single" / "results.json").read_text())
    b = json.loads((tmp_path / "ranks" / "results.json").read_text())
    assert a["metrics"] == b["metrics"] and a["counts"] == b["counts"]
