"""``mbench generate`` through the CLI: files, resume, shards, exit codes, did-you-mean."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from multiid_bench.adapters import ADAPTERS
from multiid_bench.cli.main import cli


@pytest.fixture(autouse=True)
def _unfrozen():
    """``generate`` freezes the adapter registry (as a real process would); tests share one process."""
    yield
    ADAPTERS._frozen = False


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    colours = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]
    for k, c in enumerate(colours):
        Image.new("RGB", (60, 60), c).save(tmp_path / f"r{k}.png")
    Image.new("RGB", (320, 240), (100, 100, 100)).save(tmp_path / "gt.jpg")
    rows = [
        {"id": "p1_a", "prompt": "a person", "refs": ["r0.png"], "gt": "gt.jpg", "boxes": [[100, 50, 160, 120]]},
        {"id": "p2_b", "prompt": "two people", "refs": ["r0.png", "r1.png"], "gt": "gt.jpg",
         "boxes": [[20, 40, 80, 110], [200, 40, 260, 110]]},
        {"id": "p3_c", "prompt": "three people", "refs": ["r0.png", "r1.png", "r2.png"], "gt": "gt.jpg",
         "boxes": [[10, 40, 60, 100], [120, 40, 170, 100], [230, 40, 280, 100]]},
    ]
    path = tmp_path / "bench.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _invoke(*args: str):
    # the fixture's references have no faces: give them to the model as they are (no crop detector needed)
    return CliRunner().invoke(cli, ["generate", "--ref-source", "raw", *args], catch_exceptions=False)


def test_generate_writes_images_records_and_resumes(manifest, tmp_path):
    out = tmp_path / "out"
    res = _invoke("--model", "dummy", "--bench", str(manifest), "--out", str(out), "--seed", "5", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert (summary["ok"], summary["skipped_done"], summary["failed"]) == (3, 0, 0)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["p1_a.png", "p2_b.png", "p3_c.png"]
    rows = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert [r["case_id"] for r in rows] == ["p1_a", "p2_b", "p3_c"] and all(r["global_seed"] == 5 for r in rows)
    cfg = json.loads((out / "generate.json").read_text())
    assert cfg["adapter"] == "dummy" and cfg["global_seed"] == 5 and cfg["reportable"] is True
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporaries

    res = _invoke("--model", "dummy", "--bench", str(manifest), "--out", str(out), "--seed", "5", "--json")
    assert json.loads(res.stdout)["skipped_done"] == 3

    from multiid_bench.cli.main import main

    with pytest.raises(SystemExit) as e:  # resuming with another seed would mix two runs: refused, exit 2
        main(["generate", "--model", "dummy", "--ref-source", "raw", "--bench", str(manifest), "--out", str(out),
              "--seed", "6"])
    assert e.value.code == 2


def test_shards_and_torchrun_env(manifest, tmp_path):
    out = tmp_path / "sh"
    for i in range(2):
        res = _invoke("--model", "dummy", "--bench", str(manifest), "--out", str(out), "--shard", f"{i}/2", "--json")
        assert res.exit_code == 0, res.output
    assert len(list((out / "images").iterdir())) == 3
    assert len(list(out.glob("generations.shard-*-of-002.jsonl"))) == 2

    env_out = tmp_path / "rank"
    runner = CliRunner(env={"RANK": "1", "WORLD_SIZE": "2"})
    res = runner.invoke(cli, ["generate", "--model", "dummy", "--ref-source", "raw", "--bench", str(manifest), "--out",
                              str(env_out), "--json"], catch_exceptions=False)
    assert res.exit_code == 0 and (env_out / "generations.shard-001-of-002.jsonl").is_file()


def test_not_applicable_settings_and_limit(manifest, tmp_path):
    out = tmp_path / "u"
    res = _invoke("--model", "uso", "--bench", str(manifest), "--out", str(out), "--subset", "p2,p3", "--json")
    # USO is single-identity: both multi-person cases are "not applicable", nothing is loaded, exit 0.
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert {r["status"] for r in rows} == {"not_applicable"} and all("single-identity" in r["reason"] for r in rows)

    out = tmp_path / "s"
    res = _invoke("--model", "dummy", "-S", "long_side=128", "-S", "jitter=0", "--bench", str(manifest), "--out",
                  str(out), "--limit", "1", "--json")
    assert res.exit_code == 0
    assert Image.open(out / "images" / "p1_a.png").size == (128, 96)
    assert json.loads((out / "generate.json").read_text())["reportable"] is False


def test_unknown_model_and_setting_exit_2(manifest, tmp_path):
    from multiid_bench.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["generate", "--model", "dumy", "--bench", str(manifest), "--out", str(tmp_path / "x")])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["generate", "--model", "dummy", "-S", "jiter=1", "--bench", str(manifest), "--out", str(tmp_path / "x")])
    assert e.value.code == 2


def test_unknown_model_message(manifest, tmp_path, capsys):
    from multiid_bench.cli.main import main

    with pytest.raises(SystemExit):
        main(["generate", "--model", "omnigen3", "--bench", str(manifest)])
    assert "Did you mean: omnigen, omnigen2" in capsys.readouterr().err


def test_failures_exit_4(manifest, tmp_path, monkeypatch, capsys):
    # gpt4o against a closed local port: every case fails with its reason, the run goes on, exit 4.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-printed")
    res = CliRunner().invoke(cli, ["generate", "--model", "gpt4o", "--ref-source", "raw", "-S",
                                   "base_url=http://127.0.0.1:9/v1", "-S", "max_retries=0", "--bench", str(manifest), "--out", str(tmp_path / "g")])
    assert res.exit_code == 4 and "sk-never-printed" not in res.output
    from multiid_bench.cli.main import main

    with pytest.raises(SystemExit) as e:  # the console-script path maps it the same way
        main(["generate", "--model", "gpt4o", "--ref-source", "raw", "-S", "base_url=http://127.0.0.1:9/v1", "-S",
              "max_retries=0", "--bench", str(manifest), "--out", str(tmp_path / "g"), "--retry-failed"])
    assert e.value.code == 4
    rows = [json.loads(line) for line in (tmp_path / "g" / "generations.jsonl").read_text().splitlines()]
    # records are appended: the retry's three records follow the first attempt's, the last of a case counts
    assert [r["case_id"] for r in rows] == ["p1_a", "p2_b", "p3_c"] * 2 and {r["status"] for r in rows} == {"failed"}
    assert "sk-never-printed" not in (tmp_path / "g" / "generations.jsonl").read_text() + capsys.readouterr().err


@pytest.mark.slow  # imports diffusers + transformers for the real from_pretrained path (~10-20 s on 2 busy cores)
def test_missing_weights_exit_3_before_any_case(manifest, tmp_path, monkeypatch, capsys):
    from multiid_bench.cli.main import main

    # omnigen offline with an empty HF cache: exit 3 before any case, message names the download command.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf"))
    with pytest.raises(SystemExit) as e:
        main(["generate", "--model", "omnigen", "--ref-source", "raw", "--device", "cpu", "--bench", str(manifest),
              "--out", str(tmp_path / "o")])
    assert e.value.code == 3
    err = capsys.readouterr().err
    assert "hf download Shitao/OmniGen-v1-diffusers" in err
    assert not (tmp_path / "o" / "generations.jsonl").exists()


def test_progress_lines_on_a_non_terminal_stderr(manifest, tmp_path):
    """SLURM / nohup: stderr is a file, so plain progress lines (not a bar), the loading line first."""
    res = _invoke("--model", "dummy", "--bench", str(manifest), "--out", str(tmp_path / "p"))
    assert res.exit_code == 0
    lines = res.stderr.splitlines()
    assert lines[:2] == ["generating: loading models and data ...", "generating: 3 case(s) to run"]
    assert lines[2].startswith("generating: 3/3 cases, 0 failed, ") and "cases/s" in lines[2]
