"""Face-model plug-ins: a tiny package installed into a temporary sys.path (dist-info + entry point) is listed
by ``mbench ls face-models``, used by ``--profile offline+NAME``, recorded in the run and in its comparability key."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import multiid_bench as mb
from multiid_bench.errors import ConfigError

PLUGIN = '''
import numpy as np

from multiid_bench.faces.plugins import FaceModelPlugin


def embed(crops):
    """8x8 grey thumbnail of each aligned crop, centred: a toy but real face descriptor."""
    grey = crops.astype(np.float32).mean(axis=3)
    n, s, _ = grey.shape
    thumb = grey.reshape(n, 8, s // 8, 8, s // 8).mean(axis=(2, 4)).reshape(n, 64)
    return thumb - thumb.mean(axis=1, keepdims=True)


TINY = FaceModelPlugin(embed=embed, template="arcface", crop_size=112, embedding_dim=64,
                       similarity_scale="toy: cosine of centred grey thumbnails", version="0.3", detector="mtcnn")
'''


@pytest.fixture
def tiny_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Installs ``tinyfaceplug 0.1.0`` (entry point ``tinyface``) into a temporary folder put on ``sys.path``;
    returns that folder."""
    site = tmp_path / "site"
    (site / "tinyfaceplug").mkdir(parents=True)
    (site / "tinyfaceplug" / "__init__.py").write_text(PLUGIN)
    info = site / "tinyfaceplug-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyfaceplug\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[multiid_bench.face_models]\ntinyface = tinyfaceplug:TINY\n")
    monkeypatch.syspath_prepend(str(site))
    return site


def test_the_plugin_is_listed_without_being_imported(tiny_plugin: Path) -> None:
    import sys

    from multiid_bench.cli.main import cli
    from multiid_bench.faces.plugins import installed_face_models

    found = installed_face_models()["tinyface"]
    assert found.identity == "tinyfaceplug==0.1.0" and found.target == "tinyfaceplug:TINY"
    res = CliRunner().invoke(cli, ["ls", "face-models", "--json"])
    assert res.exit_code == 0, res.output
    listed = json.loads(res.output)
    assert listed["tinyface"] == {"kind": "plug-in", "source": "tinyfaceplug==0.1.0 (tinyfaceplug:TINY)"}
    assert listed["dlib"]["kind"] == "built-in" and "tinyfaceplug" not in sys.modules


def test_profiles_take_plugins_and_refuse_unknown_names(tiny_plugin: Path) -> None:
    from multiid_bench.faces import get_profile

    profile = get_profile("offline+tinyface")
    assert profile.models() == ["dlib", "tinyface"] and profile.entry("tinyface").crop_size == 112
    with pytest.raises(ConfigError, match="'nosuch' is no installed face-model plug-in"):
        get_profile("offline+nosuch")


@pytest.mark.slow
def test_a_run_with_a_plugin_records_it_and_keys_on_its_version(tiny_plugin: Path, tmp_path: Path) -> None:
    from multiid_bench.leaderboard.comparability import differences, run_key

    def paste_gt(case):
        return case.gt_image

    run = mb.evaluate(paste_gt, bench="demo", profile="offline+tinyface", out=tmp_path / "run", limit=2,
                      device="cpu", cache_dir=str(tmp_path / "cache"), progress=False, scorers=False,
                      gt_inputs=("gt_image",), paper_pixels="as-given")
    s = run.summary
    models = {m["name"]: m for m in s["face_models"]}
    assert set(models) == {"dlib", "tinyface"}
    assert models["tinyface"]["card"]["version"] == "0.3 (plugin tinyfaceplug==0.1.0)"
    assert models["tinyface"]["card"]["cosine_scale_note"] == "toy: cosine of centred grey thumbnails"
    assert s["profile"]["name"] == "offline+tinyface"
    assert run.metrics().query("metric == 'sim_gt' and face_model == 'tinyface'").value.iloc[0] == pytest.approx(1.0)
    key = run_key(s, label="with plugin")
    assert "tinyface 0.3 (plugin tinyfaceplug==0.1.0)" in key.face_models
    older = json.loads(json.dumps(s))
    older["face_models"][[m["name"] for m in older["face_models"]].index("tinyface")]["card"]["version"] = \
        "0.3 (plugin tinyfaceplug==0.0.9)"
    assert differences(key, run_key(older, label="older plugin"))  # another plug-in version: not comparable

    # upgrading the plug-in and resuming the run would mix rows of two models: refused, saying why
    info = tiny_plugin / "tinyfaceplug-0.1.0.dist-info"
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyfaceplug\nVersion: 0.2.0\n")
    info.rename(tiny_plugin / "tinyfaceplug-0.2.0.dist-info")
    with pytest.raises(ConfigError, match="face models or their weights differ"):
        mb.evaluate(paste_gt, bench="demo", profile="offline+tinyface", out=tmp_path / "run", limit=2,
                    device="cpu", cache_dir=str(tmp_path / "cache"), progress=False, scorers=False,
                    gt_inputs=("gt_image",), paper_pixels="as-given")


METRIC_PLUGIN = '''
import numpy as np

from multiid_bench.metrics.plugins import CaseMetricPlugin


def brightness_gap(generated, gt, references):
    return None if gt is None else float(abs(generated.mean() - gt.mean()) / 255)


GAP = CaseMetricPlugin(compute=brightness_gap, name="brightness gap", version="2", higher_is_better=False,
                       definition="|mean(generated) - mean(GT)| / 255")
'''


@pytest.fixture
def metric_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Installs ``gapmetric 1.0`` (entry point ``brightness_gap`` in multiid_bench.metrics) on a temporary sys.path."""
    site = tmp_path / "metric_site"
    (site / "gapmetric").mkdir(parents=True)
    (site / "gapmetric" / "__init__.py").write_text(METRIC_PLUGIN)
    info = site / "gapmetric-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gapmetric\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[multiid_bench.metrics]\nbrightness_gap = gapmetric:GAP\n")
    monkeypatch.syspath_prepend(str(site))
    return site


@pytest.mark.slow
def test_a_per_case_metric_plugin_is_listed_computed_aggregated_and_keyed(metric_plugin: Path, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from multiid_bench.cli.main import cli
    from multiid_bench.leaderboard.comparability import run_key

    res = CliRunner().invoke(cli, ["ls", "metrics", "--json"])
    assert json.loads(res.output)["brightness_gap"] == {"id": "brightness_gap", "plugin": "gapmetric==1.0",
                                                        "entry_point": "gapmetric:GAP"}

    def darker(case):  # the GT at half brightness: the gap is half the GT's mean brightness
        return Image.fromarray((np.asarray(case.gt_image) // 2).astype(np.uint8))

    run = mb.evaluate(darker, bench="demo", profile="offline", out=tmp_path / "run", limit=2, device="cpu",
                      cache_dir=str(tmp_path / "cache"), progress=False, gt_inputs=("gt_image",))
    rows = run.rows()
    for r in rows:
        gt = np.asarray(Image.open(r["images"]["gt"]["path"]).convert("RGB")).astype(np.float64)
        gen = np.asarray(Image.open(r["images"]["generated"]["path"]).convert("RGB")).astype(np.float64)
        assert r["general"]["brightness_gap"] == pytest.approx(abs(gen.mean() - gt.mean()) / 255)
    s = run.summary
    entry = s["metrics"]["strict"]["all"]["brightness_gap"]
    assert entry["n"] == 2 and entry["value"] == pytest.approx(np.mean([r["general"]["brightness_gap"] for r in rows]))
    assert s["cards"]["brightness_gap"] == "2 (plugin gapmetric==1.0)"
    assert ("brightness_gap", "2 (plugin gapmetric==1.0)") in run_key(s, label="x").metric_versions
    assert s["scorers"]["brightness_gap"]["status"] == "ok"

    info = metric_plugin / "gapmetric-1.0.dist-info"  # another version of the plug-in: the run is not resumed
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gapmetric\nVersion: 1.1\n")
    info.rename(metric_plugin / "gapmetric-1.1.dist-info")
    with pytest.raises(ConfigError, match="per-case metric plug-ins \\(or their versions\\) differ"):
        mb.evaluate(darker, bench="demo", profile="offline", out=tmp_path / "run", limit=2, device="cpu",
                    cache_dir=str(tmp_path / "cache"), progress=False, gt_inputs=("gt_image",))
