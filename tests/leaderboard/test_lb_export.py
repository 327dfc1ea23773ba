"""``mbench export`` / ``push`` / ``hf://`` sources: the Hugging Face dataset layout and its round trip."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from lb_fixtures import GEN_RGB

import multiid_bench as mb
from multiid_bench.cli.main import cli, main
from multiid_bench.leaderboard.cases import case_values
from multiid_bench.leaderboard.comparability import run_key
from multiid_bench.leaderboard.export import export_run, headline_table
from multiid_bench.leaderboard.store import load_cases, load_results

SECRET = "hf_NEVERWRITTENtoken0123456789abcdef"


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _exit_code(args: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        main(args)
    return int(e.value.code)


@pytest.fixture
def run_and_export(make_run, tmp_path):
    run = make_run("r", model="mine")
    res = export_run(run, tmp_path / "hub" / "mine", with_images=True)
    return run, res


def test_export_round_trip_load_dataset_leaderboard_and_load_run(run_and_export, tmp_path) -> None:
    import datasets

    cache = tmp_path / "datasets-cache"
    run, res = run_and_export
    out = res.out
    assert {p.name for p in out.iterdir()} >= {"README.md", "results.json", "cases.jsonl", "paper", "strict"}
    original = load_results(run)
    rows = load_cases(original)
    for protocol in ("paper", "strict"):
        # a fresh cache: datasets keys a local folder's cache by file mtimes, not by path or content
        ds = datasets.load_dataset(str(out), protocol, split="test", cache_dir=str(cache))
        assert ds.num_rows == len(rows) == 4
        for key in ("sim_gt.arcface", "copy_paste.arcface", "clip_t"):
            if key not in ds.column_names:
                assert not case_values(rows, original.run_dir, protocol, "all", key)
                continue
            got = {cid: v for cid, v in zip(ds["case_id"], ds[key]) if v is not None}
            assert got
            assert got == pytest.approx(case_values(rows, original.run_dir, protocol, "all", key))
    default = datasets.load_dataset(str(out), split="test", cache_dir=str(cache))  # the headline protocol is the default config
    assert "sim_gt.arcface" in default.column_names
    img = np.asarray(default[0]["image"].convert("RGB"))
    assert (np.abs(img.astype(int) - GEN_RGB) <= 2).all()  # the generated image, embedded

    # the same numbers and the same comparability key through every mbench reader
    exported = load_results(out)
    assert exported.data == original.data
    assert run_key(exported.data, label="x") == run_key(original.data, label="x")
    assert mb.load_run(out).summary == mb.load_run(run).summary
    assert load_cases(exported) == rows
    for fmt in ("csv", "markdown"):
        a = _invoke("leaderboard", str(run), "--format", fmt, "--subset", "p1")
        b = _invoke("leaderboard", str(out), "--format", fmt, "--subset", "p1")
        assert a.exit_code == b.exit_code == 0
        assert b.output.replace(str(exported.path), "RUN") == a.output.replace(str(original.path), "RUN")


def test_dataset_card_yaml_states_what_ran_and_the_headline(run_and_export) -> None:
    from huggingface_hub import DatasetCard

    run, res = run_and_export
    data = load_results(run).data
    card = DatasetCard.load(res.out / "README.md")
    meta = card.data.to_dict()
    m = meta["mbench"]
    assert m["model"] == "mine" and m["bench"]["manifest_sha256"] == "a" * 64 and m["profile"] == "paper"
    assert m["protocol"] == "paper" and m["judge"] is None and m["toolkit_version"] == data["mbench_version"]
    key = run_key(data, label="mine")
    assert m["comparability_key"] == json.loads(json.dumps(
        {f.name: getattr(key, f.name) for f in dataclasses.fields(key) if f.name not in ("label", "is_paper")}))
    assert m["headline"]["sim_gt.average"] == {"p1": 0.43, "all": 0.43}
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert configs["paper"].get("default") is True and "default" not in configs["strict"]
    header, rows = headline_table(data)
    assert "| " + " | ".join(rows[0]) + " |" in card.text and header == ["metric", "p1", "all"]


def test_export_refuses_a_non_empty_folder_and_the_run_itself(make_run, tmp_path) -> None:
    run = make_run("r")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("keep")
    assert _exit_code(["export", str(run), "--out", str(tmp_path / "busy")]) == 2
    assert _exit_code(["export", str(run), "--out", str(run)]) == 2
    res = _invoke("export", str(run), "--out", str(tmp_path / "ok"))
    assert res.exit_code == 0 and "4 case rows, configs paper, strict" in res.output
    assert not list((tmp_path / "ok").rglob("*.png"))  # without --with-images: no image column, no image files


class _FakeApi:
    """Stands in for ``huggingface_hub.HfApi`` at the call boundary: records what would be uploaded."""

    calls: list[tuple[str, dict]] = []
    uploaded: dict[str, bytes] = {}
    fail_with: BaseException | None = None

    def create_repo(self, **kw):
        if _FakeApi.fail_with is not None:
            raise _FakeApi.fail_with
        _FakeApi.calls.append(("create_repo", kw))
        return f"https://huggingface.co/datasets/{kw['repo_id']}"

    def upload_folder(self, **kw):
        _FakeApi.calls.append(("upload_folder", kw))
        root = Path(kw["folder_path"])
        _FakeApi.uploaded = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    for var in ("MBENCH_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(huggingface_hub, "HfApi", _FakeApi)
    _FakeApi.calls, _FakeApi.uploaded, _FakeApi.fail_with = [], {}, None
    return _FakeApi


def test_push_uploads_the_exported_folder_and_never_writes_the_token(make_run, fake_hub, tmp_path) -> None:
    run = make_run("r", model="mine")
    res = _invoke("push", str(run), "--repo", "alice/mine-multiid", "--private")
    assert res.exit_code == 0, res.output
    assert "pushed" in res.output and SECRET not in res.output
    (name1, create), (name2, upload) = fake_hub.calls
    assert (name1, name2) == ("create_repo", "upload_folder")
    assert create == {"repo_id": "alice/mine-multiid", "repo_type": "dataset", "private": True, "exist_ok": True}
    assert upload["repo_id"] == "alice/mine-multiid" and upload["repo_type"] == "dataset" and "token" not in upload
    files = fake_hub.uploaded
    assert {"README.md", "results.json", "cases.jsonl", "paper/test-00000-of-00001.parquet",
            "strict/test-00000-of-00001.parquet"} <= set(files)
    assert json.loads(files["results.json"]) == load_results(run).data
    assert b"mbench:" in files["README.md"] and b"comparability_key" in files["README.md"]
    assert not any(SECRET.encode() in blob for blob in files.values())
    assert not any(SECRET.encode() in p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert not Path(upload["folder_path"]).exists()  # the temporary export is removed


def test_push_offline_or_without_login_or_unreachable_is_one_line_exit_3(make_run, fake_hub, monkeypatch, capsys) -> None:
    import huggingface_hub

    run = make_run("r")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _exit_code(["push", str(run), "--repo", "alice/x"]) == 3
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: cannot push to the Hub while offline") and not fake_hub.calls
    monkeypatch.delenv("HF_HUB_OFFLINE")

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert _exit_code(["push", str(run), "--repo", "alice/x"]) == 3
    assert "no Hugging Face token: run 'hf auth login'" in capsys.readouterr().err

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: SECRET)
    fake_hub.fail_with = ConnectionError("Name or service not known")
    assert _exit_code(["push", str(run), "--repo", "alice/x"]) == 3
    assert "cannot reach the Hugging Face Hub to push alice/x" in capsys.readouterr().err


def test_leaderboard_reads_hf_sources_through_the_hub_cache(run_and_export, hf_dataset_cache, capsys) -> None:
    run, res = run_and_export
    hf_dataset_cache("alice/mine-multiid", res.out, ("results.json", "cases.jsonl", "README.md"))
    local = _invoke("leaderboard", str(run), "--format", "csv")
    hub = _invoke("leaderboard", "hf://alice/mine-multiid", "--format", "csv")
    assert local.exit_code == hub.exit_code == 0
    assert hub.output == local.output and "mine,mine,measured" in hub.output
    assert _exit_code(["leaderboard", "hf://alice/not-cached", "--format", "csv"]) == 3
    assert "hf://alice/not-cached is not in the Hugging Face cache and offline mode is on" in capsys.readouterr().err
    assert _exit_code(["leaderboard", "hf://just-a-name"]) == 2


def test_card_names_the_vlm_judge_of_a_judged_run() -> None:
    from lb_fixtures import base_results

    from multiid_bench.leaderboard.export import card_metadata

    data = base_results(scorers={"vlm-judge": {"status": "ok", "card": {"judge": "Qwen/Qwen2.5-VL-7B-Instruct@cc59489"}}})
    assert card_metadata(data)["judge"] == "Qwen/Qwen2.5-VL-7B-Instruct@cc59489"
    assert card_metadata(base_results())["judge"] is None


def test_load_run_reads_hf_sources_like_the_leaderboard(run_and_export, hf_dataset_cache) -> None:
    from multiid_bench.errors import EXIT_MISSING, ConfigError, MissingDataError

    run, res = run_and_export
    from multiid_bench.leaderboard.hub import RUN_FILES

    # what snapshot_download(allow_patterns=RUN_FILES) keeps of the pushed folder (this run has no run.json)
    hf_dataset_cache("alice/mine-multiid", res.out, tuple(f for f in RUN_FILES if (res.out / f).is_file()))
    exported, pushed = mb.load_run(res.out), mb.load_run("hf://alice/mine-multiid")
    assert pushed.summary == exported.summary == mb.load_run(run).summary
    assert run_key(pushed.summary, label="x") == run_key(exported.summary, label="x")
    assert pushed.path.name == "0123456789abcdef0123456789abcdef01234567"  # the cached snapshot, not a copy
    assert mb.load_run("hf://alice/mine-multiid@main").summary == exported.summary
    assert [r["case_id"] for r in pushed.rows()] == [r["case_id"] for r in exported.rows()]

    with pytest.raises(MissingDataError) as e:  # offline, not cached: the leaderboard's one line, exit 3
        mb.load_run("hf://alice/not-cached")
    assert str(e.value).startswith("hf://alice/not-cached is not in the Hugging Face cache and offline mode is on")
    assert e.value.exit_code == EXIT_MISSING == 3
    with pytest.raises(ConfigError, match="not a Hub dataset: write hf://USER/NAME"):
        mb.load_run("hf://just-a-name")

