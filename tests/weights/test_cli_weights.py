"""`mbench weights list|download|verify|path` and `mbench doctor` through click's CliRunner."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from multiid_bench.cli.main import cli, main
from multiid_bench.errors import CheckFailedError, MissingWeightsError

PAYLOAD = b"weights!" * 50_000


@pytest.fixture()
def served_manifest(tmp_path: Path, http_root, monkeypatch: pytest.MonkeyPatch) -> Path:
    import multiid_bench.weights.manifest as manifest

    root, base = http_root
    (root / "w.bin").write_bytes(PAYLOAD)
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    (mdir / "t.toml").write_text(
        '[[weights]]\nid = "tiny"\ndescription = "d"\nlicence = "MIT"\nused_by = ["t"]\n'
        f'files = [{{ name = "w.bin", sha256 = "{hashlib.sha256(PAYLOAD).hexdigest()}", urls = ["{base}/w.bin"] }}]\n')
    monkeypatch.setattr(manifest, "MANIFEST_DIR", mdir)
    return tmp_path / "cache"


def test_list_json_shows_manifest_and_state(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["weights", "list", "--json", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["cache_root"] == str(tmp_path.resolve())
    by_id = {d["id"]: d for d in data["weights"]}
    assert by_id["mtcnn-facenet-pytorch"]["files"][0]["state"] == "ok"  # ships in facenet-pytorch
    assert by_id["insightface-buffalo-l"]["files"][1]["state"] == "missing"
    assert "non-commercial" in by_id["insightface-buffalo-l"]["licence"]
    pnet = by_id["mtcnn-facenet-pytorch"]["files"][0]
    assert (pnet["location"], pnet["local_size"], pnet["pinned"]) == ("package", 28570, True)


def test_list_shows_location_and_size_of_hf_cache_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.weights.test_hf_cache import COMMIT, DATA, hf_tree

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    hf_tree(tmp_path / "hf", "timm/vit_base_patch16_clip_224.openai", {"open_clip_model.safetensors": (DATA, True)})
    res = CliRunner().invoke(cli, ["weights", "list", "--json", "--cache-dir", str(tmp_path / "mb")])
    data = json.loads(res.output)
    assert data["hf_hub_cache"] == str(tmp_path / "hf")
    [clip] = next(d for d in data["weights"] if d["id"] == "clip-vit-b-16-openai")["files"]
    assert (clip["location"], clip["state"], clip["local_size"], clip["pinned"]) == ("hf-cache", "ok", len(DATA), False)
    assert clip["path"].endswith(f"snapshots/{COMMIT}/open_clip_model.safetensors")
    monkeypatch.setenv("COLUMNS", "200")  # one table row per file (narrower consoles split the columns)
    res = CliRunner().invoke(cli, ["weights", "list", "--cache-dir", str(tmp_path / "mb")], terminal_width=200)
    row = next(ln for ln in res.output.splitlines() if "open_clip_model" in ln)
    assert "hf-cache" in row and "69.6 kB" in row and "(unpinned)" in row


def test_download_verify_path(served_manifest: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["weights", "download", "tiny", "--cache-dir", str(served_manifest)])
    assert res.exit_code == 0, res.output
    target = served_manifest.resolve() / "weights" / "tiny" / "w.bin"
    assert f"ok  tiny: {target}" in res.output and target.read_bytes() == PAYLOAD
    res = runner.invoke(cli, ["weights", "path", "tiny", "--check", "--cache-dir", str(served_manifest)])
    assert res.output.strip() == str(target)
    assert runner.invoke(cli, ["weights", "verify", "tiny", "--cache-dir", str(served_manifest)]).exit_code == 0
    target.write_bytes(PAYLOAD[:-1])  # damaged after download
    res = runner.invoke(cli, ["weights", "verify", "tiny", "--json", "--cache-dir", str(served_manifest)])
    assert isinstance(res.exception, CheckFailedError) and res.exception.exit_code == 1
    assert json.loads(res.output[: res.output.rindex("]") + 1])[0]["state"] == "corrupt"


def test_download_offline_exits_3(served_manifest: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("MBENCH_OFFLINE", "1")
    res = CliRunner().invoke(cli, ["weights", "download", "tiny", "--cache-dir", str(served_manifest)])
    assert isinstance(res.exception, MissingWeightsError) and res.exception.exit_code == 3
    assert "mbench weights download tiny" in str(res.exception)
    with pytest.raises(SystemExit) as ei:  # the console entry maps it to exit code 3
        main(["weights", "download", "tiny", "--cache-dir", str(served_manifest)])
    assert ei.value.code == 3 and "offline" in capsys.readouterr().err


def test_doctor_exit_codes_follow_the_named_profile(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["doctor", "--json", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 1, res.output  # default profile: paper, whose weights are not here
    rep = json.loads(res.output)
    assert rep["cache"]["writable"] is True and rep["packages"]["facenet-pytorch"] == "2.5.3"
    assert (rep["profile"], rep["ready"]) == ("paper", False)
    assert rep["profiles"]["offline"]["ready"] is True
    paper = rep["profiles"]["paper"]
    assert paper["missing_weights"] == [
        "insightface-buffalo-l/det_10g.onnx", "insightface-buffalo-l/w600k_r50.onnx",
        "retinaface-r50-facexlib/detection_Resnet50_Final.pth", "adaface-ir50-ms1mv2/adaface_ir50_ms1mv2.ckpt",
        "facenet-vggface2/20180402-114759-vggface2.pt"]
    assert paper["message"].splitlines()[0] == "5 model weight files missing for profile 'paper' (sizes not in the manifests)"
    res = runner.invoke(cli, ["doctor", "--profile", "offline", "--json", "--cache-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["doctor", "--cache-dir", str(tmp_path)])  # the human report prints the message once
    assert res.exit_code == 1
    assert res.output.count("5 model weight files missing for profile 'paper'") == 1
    assert "rerun with --profile offline" in res.output and "mbench weights download --profile paper" in res.output


def test_cli_modules_import_no_heavy_packages() -> None:
    import subprocess

    code = ("import sys, multiid_bench.cli.weights, multiid_bench.cli.faces, multiid_bench.weights, "
            "multiid_bench.faces, multiid_bench.images; "
            "print([m for m in ('torch', 'cv2', 'onnxruntime', 'insightface', 'dlib', 'facexlib') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_download_profile_lists_every_file_of_the_paper_profile_offline(monkeypatch) -> None:
    """`weights download --profile paper` offline: one exit-3 error naming every file the profile needs."""
    from click.testing import CliRunner

    from multiid_bench.cli.main import cli
    from multiid_bench.faces import get_profile

    monkeypatch.setenv("MBENCH_OFFLINE", "1")
    from multiid_bench.errors import MissingWeightsError

    res = CliRunner().invoke(cli, ["weights", "download", "--profile", "paper"])
    assert isinstance(res.exception, MissingWeightsError) and res.exception.exit_code == 3  # main() maps it to 3
    message = str(res.exception)
    lines = message.splitlines()
    assert lines[0] == "5 model weight files missing for profile 'paper' (offline; sizes not in the manifests)"
    assert {ln.split(" / ")[0].strip() for ln in lines[1:6]} == set(get_profile("paper").weight_ids())
    assert "mbench weights download --profile paper" in message and "--profile offline" in message
    assert res.output.splitlines()[0].startswith("5 file(s) in 4 weight id(s); 5 to download: 0 B + 5 file(s)")


def test_download_prints_the_total_size_first(tmp_path: Path, http_root, fake_hub, monkeypatch) -> None:
    import multiid_bench.weights.manifest as manifest

    root, base = http_root
    (root / "w.bin").write_bytes(PAYLOAD)
    commit = "1" * 40
    fake_hub.add("org/model", commit, {"m.safetensors": (b"m" * 5000, True)})
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    (mdir / "t.toml").write_text(
        '[[weights]]\nid = "two"\ndescription = "d"\nlicence = "MIT"\nused_by = ["t"]\nfiles = [\n'
        f'  {{ name = "w.bin", sha256 = "{hashlib.sha256(PAYLOAD).hexdigest()}", urls = ["{base}/w.bin"] }},\n'
        f'  {{ name = "m.safetensors", repo = "org/model", filename = "m.safetensors", revision = "{commit}", '
        'sha256 = "", sha256_note = "Hub LFS" },\n]\n')
    monkeypatch.setattr(manifest, "MANIFEST_DIR", mdir)
    import multiid_bench.weights.hf as hf
    from multiid_bench.weights.messages import human_size

    real = hf.hub_file_info
    monkeypatch.setattr(hf, "hub_file_info", lambda wf, api=None, revision=None: real(wf, fake_hub, revision=revision))
    res = CliRunner().invoke(cli, ["weights", "download", "two", "--cache-dir", str(tmp_path / "mb")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == f"2 file(s) in 1 weight id(s); 2 to download: {human_size(len(PAYLOAD) + 5000)}; 0 already present"
    assert human_size(len(PAYLOAD) + 5000) == "405.0 kB"
    assert lines[1].startswith("ok  two: ") and lines[2].startswith("ok  two: ")
    assert str(tmp_path / "hf") in lines[2]  # the Hub file went to the HF cache

