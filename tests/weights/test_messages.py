"""One missing-weights message: one line per file, the fixes once, counts that match; same from every command."""
from __future__ import annotations

from pathlib import Path

import pytest

from multiid_bench.cli._errors import run_with_error_mapping
from multiid_bench.cli.main import cli
from multiid_bench.errors import MissingDataError, MissingWeightsError
from multiid_bench.weights.messages import MissingFile, format_missing, human_size, missing_error

PAPER_FILES = [
    "  insightface-buffalo-l / det_10g.onnx  size ?  from github.com/deepinsight/insightface (zip)",
    "  insightface-buffalo-l / w600k_r50.onnx  size ?  from github.com/deepinsight/insightface (zip)",
    "  retinaface-r50-facexlib / detection_Resnet50_Final.pth  size ?  from github.com/xinntao/facexlib",
    "  adaface-ir50-ms1mv2 / adaface_ir50_ms1mv2.ckpt  size ?  from Google Drive",
    "  facenet-vggface2 / 20180402-114759-vggface2.pt  size ?  from github.com/timesler/facenet-pytorch",
]


def mf(wid: str, name: str, size: int = 0, used_by: tuple[str, ...] = ("faces.model.x",)) -> MissingFile:
    return MissingFile(wid, name, Path("/c") / wid / name, f"mbench weights download {wid}", "", (
        f"https://github.com/o/{wid}/releases/download/v1/{name}",), size=size, used_by=used_by)


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 999, 1000, 16_923_827, 3_510_000_000)] == [
        "size ?", "999 B", "1.0 kB", "16.9 MB", "3.5 GB"]


def test_format_lists_each_file_once_and_the_fixes_once() -> None:
    items = [mf("a", "a.onnx", 2_000_000), mf("b", "b1.pt", 1_500_000), mf("b", "b2.pt", 500_000)]
    text = format_missing(items + [items[0]], profile="paper", offline=True)  # a duplicate is listed once
    assert text.splitlines() == [
        "3 model weight files missing for profile 'paper' (offline; 4.0 MB in all)",
        "  a / a.onnx  2.0 MB  from github.com/o/a",
        "  b / b1.pt  1.5 MB  from github.com/o/b",
        "  b / b2.pt  500.0 kB  from github.com/o/b",
        "fix, one of:",
        "  download:    mbench weights download --profile paper   (needs network; unset MBENCH_OFFLINE/HF_HUB_OFFLINE"
        " or drop --offline)",
        "  no download: rerun with --profile offline (MTCNN + dlib, shipped with pip packages)",
        "  by hand:     put each file where `mbench weights path ID` says (Hub files: `hf download REPO FILE "
        "--revision COMMIT`), or set MBENCH_WEIGHTS_<ID>=/path/to/file",
    ]
    partial = format_missing([items[0], mf("c", "c.bin")], what="scorer clip")
    assert partial.splitlines()[0] == "2 model weight files missing for scorer clip (2.0 MB + 1 file of unknown size)"
    assert "mbench weights download a c" in partial and "--profile offline" not in partial


def test_error_class_and_structured_list() -> None:
    err = missing_error([mf("a", "a.onnx")])
    assert isinstance(err, MissingWeightsError) and err.exit_code == 3 and len(err.missing) == 1
    data = MissingFile("data.bank", "", Path("bank.safetensors"), "", "", (), "not found", kind="data")
    err = missing_error([data])
    assert isinstance(err, MissingDataError) and str(err).splitlines()[:2] == [
        "1 data path missing", "  data.bank: bank.safetensors  [not found]"]


def test_evaluate_default_profile_with_nothing_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MBENCH_OFFLINE", "1")
    monkeypatch.setenv("MBENCH_HOME", str(tmp_path / "mb"))
    code = run_with_error_mapping(cli, ["evaluate", "--bench", "demo", "--model", "dummy", "--out",
                                        str(tmp_path / "run")], debug=False)
    out = capsys.readouterr()
    lines = (out.out + out.err).strip().splitlines()
    assert code == 3
    assert len(lines) <= 15, "\n".join(lines)
    i = next(k for k, ln in enumerate(lines) if "5 model weight files missing for profile 'paper'" in ln)
    assert lines[i + 1:i + 6] == PAPER_FILES  # one line per missing file, and the count matches
    assert lines[i + 6] == "fix, one of:"
    assert sum("mbench weights download --profile paper" in ln for ln in lines) == 1
    assert sum("--profile offline" in ln for ln in lines) == 1
    assert not any("target:" in ln or "sources:" in ln for ln in lines)  # no nested repetition


def test_train_with_nothing_downloaded_exits_3_before_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    monkeypatch.setenv("MBENCH_OFFLINE", "1")
    monkeypatch.setenv("MBENCH_HOME", str(tmp_path / "mb"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)  # the config's relative data paths do not exist here
    monkeypatch.delitem(sys.modules, "diffusers", raising=False)
    config = Path(__file__).resolve().parents[2] / "reference_model" / "configs" / "phase1.toml"
    code = run_with_error_mapping(cli, ["train", "--config", str(config)], debug=False)
    err = capsys.readouterr().err.splitlines()
    assert code == 3
    assert err[0] == "error: 3 model weight files and 5 data paths missing for training (offline; sizes not in the manifests)"
    assert err[1:9] == [
        "  flux1-dev-diffusers / FLUX.1-dev  size ?  from hf.co/black-forest-labs/FLUX.1-dev@main",
        "  insightface-antelopev2 / glintr100.onnx  size ?  from hf.co/lithiumice/insightface@main",
        "  retinaface-r50-facexlib / detection_Resnet50_Final.pth  size ?  from github.com/xinntao/facexlib",
        "  data.paths[0]: data/MultiID-2M/train_rec  [not found]",
        "  data.paths[1]: data/CelebA-HQ-records  [not found]",
        "  data.paths[2]: data/FFHQ-records  [not found]",
        "  data.paths[3]: data/FaceID-6M-subset  [not found]",
        "  data.bank: data/MultiID-2M/reference_bank.safetensors  [not found (mbench train build-bank)]",
    ]
    assert "mbench weights download flux1-dev-diffusers insightface-antelopev2 retinaface-r50-facexlib" in err[10]
    assert "diffusers" not in sys.modules  # nothing was loaded


def test_train_preflight_sig_branch_needs_siglip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from multiid_bench.reference_model.train_config import load_config
    from multiid_bench.weights.requirements import train_requirements

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)
    config = Path(__file__).resolve().parents[2] / "reference_model" / "configs" / "phase3_siglip.toml"
    weights, other = train_requirements(load_config(config))
    assert ("siglip-base-patch16-256-multilingual", None) in weights and ("flux1-dev-diffusers", None) in weights
    assert [m.weight_id for m in other] == ["model.init_adapter", "data.paths[0]", "data.bank", "data.ref_dir"]
