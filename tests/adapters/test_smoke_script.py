"""``benchmarks/smoke_adapters.py`` runs on CPU with ``dummy`` (the GPU run itself is for users' machines)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from PIL import Image


def _script():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "smoke_adapters.py"
    spec = importlib.util.spec_from_file_location("smoke_adapters", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_smoke_dummy_writes_png_figures_and_a_verdict(tmp_path, capsys):
    smoke = _script()
    assert smoke.main(["--models", "dummy", "--steps", "2", "--device", "cpu", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("dummy: OK ") and ("no GPU" in out[0] or "peak GPU" in out[0])
    data = json.loads((tmp_path / "smoke.json").read_text())
    (row,) = data["rows"]
    assert row["verdict"] == "OK" and row["n_ids"] > 1 and row["generate_s"] >= 0 and row["rss_mib"] > 0
    with Image.open(tmp_path / "dummy.png") as im:
        assert list(im.size) == row["size"]
    assert smoke.is_blank(Image.new("RGB", (8, 8), (3, 3, 3))) and not smoke.is_blank(Image.open(row["png"]))
