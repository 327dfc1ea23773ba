"""``mb.IdentityScore`` / ``mb.score_images``: the bench's identity numbers for in-memory images, no bench on disk."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import multiid_bench as mb
from multiid_bench.errors import ConfigError


@pytest.mark.slow
def test_identity_score_equals_the_bench_path_on_demo_cases(tmp_path: Path) -> None:
    def paste_gt(case):
        return case.gt_image

    cache = str(tmp_path / "cache")
    run = mb.evaluate(paste_gt, bench="demo", profile="offline", out=tmp_path / "run", subsets="p2,p3", limit=4,
                      device="cpu", cache_dir=cache, progress=False, scorers=False, gt_inputs=("gt_image",))
    rows = run.rows()
    assert [r["subset"] for r in rows] == ["p2", "p2", "p2", "p3"]
    metric = mb.IdentityScore(profile="offline", device="cpu", cache_dir=cache)
    for r in rows:  # as a training loop holds them: the generated image a CHW uint8 tensor, the rest PIL
        im = r["images"]
        generated = torch.from_numpy(np.asarray(Image.open(im["generated"]["path"]).convert("RGB"))).permute(2, 0, 1)
        metric.update(generated, Image.open(im["gt"]["path"]), [Image.open(x["path"]) for x in im["refs"]])
    got = metric.compute()
    paper = run.summary["metrics"]["paper"]["all"]
    assert set(got) == {f"{m}.{fm}" for m in ("sim_gt", "sim_ref", "copy_paste", "copy_paste_ranked", "blend_gt",
                                              "blend_ref") for fm in ("dlib", "average")}
    assert got == {k: paper[k]["value"] for k in got}  # exactly: same pixels, same pipeline, same aggregation
    assert metric.results()["strict"]["p2"]["sim_gt.dlib"] == run.summary["metrics"]["strict"]["p2"]["sim_gt.dlib"]
    # per case too (paper protocol; strict also reads the bench's GT boxes, which update() was not given here)
    assert [m["scores"]["paper"] for m in metric.rows] == [r["scores"]["paper"] for r in rows]
    assert metric.compute("p2")["sim_gt.dlib"] == run.summary["metrics"]["paper"]["p2"]["sim_gt.dlib"]["value"]

    one = rows[0]["images"]
    functional = mb.score_images(Image.open(one["generated"]["path"]), Image.open(one["gt"]["path"]),
                                 [Image.open(x["path"]) for x in one["refs"]], profile="offline", device="cpu",
                                 cache_dir=cache)
    assert functional["sim_gt.dlib"] == rows[0]["scores"]["paper"]["dlib"]["sim_gt"]
    metric.reset()
    with pytest.raises(ConfigError, match="nothing to compute; call update"):
        metric.compute()


def test_update_refuses_what_it_cannot_score() -> None:
    metric = mb.IdentityScore(profile="offline", device="cpu")
    img = Image.new("RGB", (8, 8))
    with pytest.raises(ConfigError, match="references must be a list of 1-4 images"):
        metric.update(img, img, img)
    with pytest.raises(ConfigError, match=r"a batch of 2 generated images needs as many GT images \(1\)"):
        metric.update([img, img], [img], [[img], [img]])
    with pytest.raises(ConfigError, match="IdentityScore.update returned str"):
        metric.update("not an image", img, [img])
    assert repr(metric) == "IdentityScore(profile='offline', protocol='paper', cases=0)"
