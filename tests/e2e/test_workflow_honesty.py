"""Issue 23: honest exit codes, usage errors before any folder, no side effects on the caller's process,
resume that never reuses a changed function, visible user bugs, guarded run files (demo, offline)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import multiid_bench as mb
from multiid_bench.cli._errors import run_with_error_mapping
from multiid_bench.cli.main import cli
from multiid_bench.errors import EXIT_NOTHING_EVALUATED, ConfigError

OFFLINE = dict(bench="demo", profile="offline", device="cpu", scorers=False, progress=False)


def _cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = run_with_error_mapping(cli, args, debug=False)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_nothing_evaluated_exits_5_and_the_environment_is_restored(tmp_path: Path, monkeypatch, capsys) -> None:
    import huggingface_hub.constants

    for var in ("HF_HUB_OFFLINE", "MBENCH_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def forgot_return(case):  # a notebook function that forgot its `return`
        case.references

    run = mb.evaluate(forgot_return, out=tmp_path / "run", limit=2, cache_dir=str(tmp_path / "cache"), **OFFLINE)
    c = run.summary["counts"]
    assert (c["expected"], c["evaluated"], c["not_applicable"], c["failed"]) == (2, 0, 2, 0)
    assert run.exit_code == EXIT_NOTHING_EVALUATED == 5
    # the offline profile switched the process offline for the call only
    assert "HF_HUB_OFFLINE" not in os.environ and "MBENCH_OFFLINE" not in os.environ
    assert huggingface_hub.constants.HF_HUB_OFFLINE is False

    code, _, err = _cli(["evaluate", "--model", "uso", "--bench", "demo", "--subset", "p2", "--profile", "offline",
                         "--device", "cpu", "--no-scorers", "--out", str(tmp_path / "uso"), "--cache-dir",
                         str(tmp_path / "cache")], capsys)
    assert code == 5 and "nothing was evaluated" in err and "3 not applicable" in err


def test_usage_errors_are_one_line_exit_2_and_leave_no_folder(tmp_path: Path, capsys) -> None:
    base = ["evaluate", "--model", "copy-reference", "--bench", "demo", "--profile", "offline", "--no-scorers",
            "--limit", "1", "--cache-dir", str(tmp_path / "cache")]
    for device in ("gpu", "cuda"):
        out = tmp_path / f"dev-{device}"
        code, _, err = _cli([*base, "--device", device, "--out", str(out)], capsys)
        if device == "cuda" and "no CUDA GPU" not in err and code != 2:
            continue  # a machine with a GPU accepts it
        assert code == 2 and "Traceback" not in err and f"device {device!r}" in err, err
        assert not out.exists()
    out = tmp_path / "nobench"
    code, _, err = _cli([*base, "--bench", "dem", "--out", str(out)], capsys)
    assert code == 3 and "not 'demo'" in err and not out.exists()

    afile = tmp_path / "results.txt"
    afile.write_text("mine")
    with pytest.raises(ConfigError, match="is an existing file, not a folder"):
        mb.evaluate("copy-reference", out=afile, **OFFLINE)
    assert afile.read_text() == "mine"
    with pytest.raises(ConfigError, match="does not exist"):
        mb.load_run(tmp_path / "nonexistent")
    with pytest.raises(ConfigError, match=r"protocol \(--protocol\) must be one of") as e:
        mb.evaluate("copy-reference", out=tmp_path / "p", protocol="strcit", **OFFLINE)
    assert str(e.value).startswith("protocol ") and not (tmp_path / "p").exists()


@pytest.mark.slow
def test_resume_refuses_a_changed_function_and_overwrite_moves_the_old_rows_aside(tmp_path: Path, monkeypatch,
                                                                                    capsys) -> None:
    kw = dict(out=tmp_path / "run", limit=2, cache_dir=str(tmp_path / "cache"), gt_inputs=("gt_image",), **OFFLINE)

    def my_model(case):
        return case.gt_image

    original = my_model
    assert mb.evaluate(my_model, **kw).rows_written == 2
    capsys.readouterr()
    again = mb.evaluate(my_model, **kw)  # unchanged: resumes everything, and says so on stdout
    assert again.rows_written == 0 and again.exit_code == 0
    assert "all 2 case(s) of this run already have a row" in capsys.readouterr().out

    def my_model(case):  # noqa: F811 -- the notebook cell, fixed and re-run: same name, other code
        return case.gt_image.transpose(0)

    with pytest.raises(ConfigError, match=r"settings differ \(model_fingerprint\).*overwrite=True"):
        mb.evaluate(my_model, **kw)
    with pytest.raises(ConfigError, match="model_fingerprint"):  # same code, retrained: version= tells
        mb.evaluate(original, version="ckpt-2", **kw)
    fixed = mb.evaluate(my_model, overwrite=True, **kw)
    assert fixed.rows_written == 2 and fixed.exit_code == 0
    moved = [p for p in (tmp_path / "run").iterdir() if p.name.startswith("replaced-")]
    assert len(moved) == 1 and (moved[0] / "cases.jsonl").is_file() and (moved[0] / "results.json").is_file()
    log = json.loads((tmp_path / "run" / "replaced.jsonl").read_text().splitlines()[0])
    assert log["moved_to"] == moved[0].name and "cases.jsonl" in log["entries"]
    assert "overwrite: moved" in capsys.readouterr().err

    # two different lambdas never share a default folder
    monkeypatch.chdir(tmp_path)
    lam = dict(kw, out=None, limit=1)
    a = mb.evaluate(lambda case: None, **lam)
    b = mb.evaluate(lambda case: case and None, **lam)
    assert a.path != b.path and a.summary["model"].startswith("lambda-") and b.path.parent == Path("runs")


@pytest.mark.slow
def test_score_stops_at_once_on_misnamed_images_and_report_never_overwrites_run_files(tmp_path: Path,
                                                                                       capsys) -> None:
    from PIL import Image

    images = tmp_path / "mine"
    images.mkdir()
    for k in range(3):
        Image.new("RGB", (64, 64), (k, k, k)).save(images / f"{k}.png")
    common = ["--bench", "demo", "--profile", "offline", "--device", "cpu", "--no-scorers", "--cache-dir",
              str(tmp_path / "cache")]
    out = tmp_path / "scored"
    code, _, err = _cli(["score", "--images", str(images), "--out", str(out), *common], capsys)
    assert code == 2 and "none of the 17 expected names found" in err and "found 0.png, 1.png, 2.png" in err
    assert "p1_" in err and not out.exists()

    run = tmp_path / "run"
    code, _, _ = _cli(["evaluate", "--model", "copy-reference", "--limit", "1", "--out", str(run), *common], capsys)
    assert code == 0
    results = (run / "results.json").read_bytes()
    for target in (run / "results.json", run / "cases.jsonl", tmp_path / "notes.txt"):
        if target.suffix == ".txt":
            target.write_text("mine")
        code, _, err = _cli(["report", str(run), "--out", str(target)], capsys)
        assert code == 2 and "refusing" in err and "Traceback" not in err, err
    assert (run / "results.json").read_bytes() == results and (tmp_path / "notes.txt").read_text() == "mine"
    code, _, _ = _cli(["report", str(run), "--out", str(run / "report.html")], capsys)
    assert code == 0 and (run / "report.html").is_file()

    # --overwrite on the CLI: the old run moves aside, the new one starts afresh
    code, _, err = _cli(["evaluate", "--model", "copy-reference", "--limit", "1", "--out", str(run), "--overwrite",
                         *common], capsys)
    assert code == 0 and "overwrite: moved" in err
    moved = [p for p in run.iterdir() if p.name.startswith("replaced-")]
    assert len(moved) == 1 and (moved[0] / "results.json").read_bytes() == results


@pytest.mark.slow
def test_a_user_bug_is_visible_grouped_and_raise_errors_reraises(tmp_path: Path) -> None:
    kw = dict(limit=3, cache_dir=str(tmp_path / "cache"), gt_inputs=("gt_image",), **OFFLINE)
    first: list[str] = []

    def buggy(case):
        first.append(first[0] if first else case.case_id)
        scale = 1 if case.case_id == first[0] else 0  # fine on the first case, a bug on the others
        return case.gt_image.resize((case.gt_image.width // scale, case.gt_image.height))

    run = mb.evaluate(buggy, out=tmp_path / "run", **kw)
    assert run.exit_code == 4 and run.summary["counts"]["failed"] == 2 and run.summary["counts"]["ok"] == 1
    row = run.rows()[1]
    error = row["generation"]["error"]
    assert error["type"] == "ZeroDivisionError" and error["message"] == "integer division or modulo by zero"
    assert error["where"].endswith(f"test_workflow_honesty.py:{buggy.__code__.co_firstlineno + 3} in buggy")
    assert row["reason"].startswith("generation failed: ZeroDivisionError: integer division or modulo by zero (at "
                                    "test_workflow_honesty.py:")
    log = (tmp_path / "run" / "run.log").read_text()
    assert log.count("Traceback (most recent call last)") == 2 and "case.gt_image.width // scale" in log
    assert run.summary["failures"] == {f"ZeroDivisionError at {error['where']}": 2}  # one group, not one per case

    with pytest.raises(ZeroDivisionError):
        mb.evaluate(buggy, out=tmp_path / "debug", raise_errors=True, **kw)


@pytest.mark.slow
def test_an_image_with_a_missing_face_is_a_model_outcome_not_a_failure(tmp_path: Path, capsys) -> None:
    def one_of_two(case):  # the GT photo with the second person blacked out: the model "forgot" a person
        from PIL import ImageDraw

        image = case.gt_image
        x1, y1, x2, y2 = case.boxes[1]
        pad = 0.4 * (x2 - x1)
        ImageDraw.Draw(image).rectangle((x1 - pad, y1 - pad, x2 + pad, y2 + pad), fill=(0, 0, 0))
        return image

    run = mb.evaluate(one_of_two, out=tmp_path / "run", subsets="p2", limit=1, cache_dir=str(tmp_path / "cache"),
                      gt_inputs=("boxes", "gt_image"), **OFFLINE)
    c = run.summary["counts"]
    assert run.exit_code == 0 and (c["missing_faces"], c["failed"], c["ok"]) == (1, 0, 0)
    assert c["ok"] + c["missing_faces"] + c["failed"] + c["not_applicable"] + c["pending"] == c["expected"] == 1
    row = run.rows()[0]
    assert row["status"] == "missing_faces" and row["reason"] == "2 faces expected, 1 found"
    strict = row["scores"]["strict"]["dlib"]
    assert strict["missing"] == 1 and strict["sim_gt"] < 0.6  # the missing person scores 0 under strict
    assert row["scores"]["paper"]["dlib"]["sim_gt"] > 0.9  # the official script averages the face it found
    rules = run.summary["missing_faces"]
    assert rules["reasons"] == {"2 faces expected, 1 found": 1} and "official" in rules["paper"]
    assert run.summary["metrics"]["strict"]["p2"]["face_failure_rate.dlib"]["value"] == 0.5
