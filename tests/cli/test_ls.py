"""``mbench ls models|metrics|profiles|weights``."""
from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from multiid_bench.cli.main import cli


def _json(*args: str):
    res = CliRunner().invoke(cli, ["ls", *args, "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_ls_models_lists_capabilities_and_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    rows = {r["name"]: r for r in _json("models")}
    assert {"dummy", "withanyone", "uno", "gpt4o", "ground-truth", "copy-reference"} <= set(rows)
    wa = rows["withanyone"]
    assert wa["capabilities"]["needs_boxes"] is True and wa["capabilities"]["gt_derived_inputs"] == ["boxes"]
    assert wa["capabilities"]["upstream_revision"] == "996d152" and wa["weights"] == "missing"
    assert rows["uso"]["capabilities"]["max_ids"] == 1 and rows["gpt4o"]["capabilities"]["seed_supported"] is False
    assert rows["dummy"]["capabilities"]["support_status"] == "tested-in-ci" and rows["dummy"]["weights"] == "none"
    assert "with-anyone" in wa["aliases"]
    # A cached snapshot flips the state to present.
    snap = tmp_path / "hf" / "models--Shitao--OmniGen-v1-diffusers" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "model_index.json").write_text("{}")
    assert {r["name"]: r for r in _json("models")}["omnigen"]["weights"] == "present"


def test_ls_models_table_and_no_heavy_imports():
    res = CliRunner(env={"COLUMNS": "250"}).invoke(cli, ["ls", "models", "--long"], catch_exceptions=False)
    assert res.exit_code == 0 and "withanyone" in res.output and "best-effort" in res.output
    code = ("import sys, json\nfrom multiid_bench.cli.main import main\n"
            "try:\n    main(['ls', 'models', '--json'])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps([m for m in ('torch', 'diffusers', 'transformers', 'cv2', 'insightface') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_ls_metrics_profiles_weights():
    metrics = _json("metrics")
    assert metrics["sim_gt"]["higher_is_better"] is True
    profiles = _json("profiles")
    assert {"paper", "offline"} <= set(profiles)
    weights = _json("weights")
    assert weights and all({"id", "files", "licence"} <= set(w) for w in weights)
    res = CliRunner().invoke(cli, ["ls", "metrics"], catch_exceptions=False)
    assert "sim_gt" in res.output


def test_models_alias_and_real_defaults():
    """``mbench models`` is ``mbench ls models``; the size shown is what the adapter really requests (issue 17:
    umo was listed at UNO's 512 although it generates at 768)."""
    runner = CliRunner(env={"COLUMNS": "250"})
    alias = runner.invoke(cli, ["models", "--json", "--no-check-weights"], catch_exceptions=False)
    direct = runner.invoke(cli, ["ls", "models", "--json", "--no-check-weights"], catch_exceptions=False)
    assert alias.exit_code == 0 and json.loads(alias.output) == json.loads(direct.output)
    rows = {r["name"]: r for r in json.loads(alias.output)}
    assert rows["umo"]["capabilities"]["native_res"] == [768, 768]
    assert rows["umo"]["capabilities"]["defaults"]["width"] == 768
    assert rows["qwen-image-edit"]["capabilities"]["defaults"]["model_id"] == "Qwen/Qwen-Image-Edit"
    table = runner.invoke(cli, ["models", "--no-check-weights"], catch_exceptions=False).output
    umo_line = next(line for line in table.splitlines() if "umo (umo-uno)" in line)
    uno_line = next(line for line in table.splitlines() if "│" in line and line.split("│")[1].strip() == "uno")
    assert "768x768" in umo_line and "512x512" in uno_line
    kontext = next(line for line in table.splitlines() if "flux-kontext" in line)
    assert "1 (paper preset)" in kontext
