"""The HTML report: self-contained, boxes drawn, failures shown, and (with Chromium) rendered and sortable."""
from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from lb_fixtures import GEN_RGB, GT_RGB, REF_RGB, base_results, demo_cases, write_run
from PIL import Image

from tests.headless_chromium import chromium, require_chromium

from multiid_bench.leaderboard.report import build_report

HEADER_RGB = (0x1F, 0x4E, 0x79)  # table header background in render.HTML_STYLE
BOX_RGB = (0x00, 0xE5, 0xFF)  # first detector's box colour in report._DET_COLOURS


def _near(arr: np.ndarray, rgb: tuple[int, int, int], tol: int = 14) -> np.ndarray:
    return (np.abs(arr[..., :3].astype(int) - np.array(rgb)) <= tol).all(axis=-1)


def _imgs(html: str) -> dict[str, str]:
    """alt text -> data URI, for every <img> of the page."""
    return {f"{i}:{alt}": src for i, (alt, src) in enumerate(re.findall(r'<img (?:class="plot" )?alt="([^"]*)" src="([^"]+)"', html))}


def test_report_is_self_contained_with_boxes_and_reasons(make_run, tmp_path) -> None:
    run = make_run("r", model="mine")
    out = build_report(run, tmp_path / "out" / "report.html")
    html = out.read_text(encoding="utf-8")
    imgs = _imgs(html)
    assert imgs and all(src.startswith("data:image/") for src in imgs.values())
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:|file:|/)', html)
    # 4 cases x (generated, GT, 1 ref) thumbnails + the plot
    assert sum(k.endswith(":generated") for k in imgs) == 4 and sum(k.endswith(":trade-off plot") for k in imgs) == 1
    assert "no face detected in the generated image" in html and 'class="card st-failed"' in html
    assert "reported in the paper, Table 1a" in html and "Sim(GT) [arcface] ↑" in html

    def decode(key: str) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(imgs[key].split(",", 1)[1]))).convert("RGB"))

    gens = [k for k in imgs if k.endswith(":generated")]
    ok_gen, failed_gen = decode(gens[0]), decode(gens[-1])
    assert _near(ok_gen, GEN_RGB).mean() > 0.5  # it is the generated image
    assert _near(ok_gen, BOX_RGB, 40).sum() > 50  # with its detected face box drawn
    assert _near(failed_gen, BOX_RGB, 40).sum() == 0  # the failed case detected no face: no box
    gt = decode([k for k in imgs if k.endswith(":GT")][0])
    assert _near(gt, GT_RGB).mean() > 0.4 and _near(gt, (255, 214, 0), 40).sum() > 20  # dataset box, dashed yellow


def test_report_without_cases_file_still_renders(tmp_path) -> None:
    run = write_run(tmp_path / "nocases", base_results())
    html = build_report(run, tmp_path / "r.html").read_text()
    assert "No cases.jsonl next to the results" in html


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """One report shared by the browser tests (built once: each build draws the plot)."""
    require_chromium()
    root = tmp_path_factory.mktemp("browser") / "run"
    write_run(root, base_results(model="mine"), demo_cases(root))
    return build_report(root, root.parent / "report.html")


def test_report_screenshot_shows_table_and_gallery(rendered, tmp_path) -> None:
    shot = tmp_path / "shot.png"
    res = chromium("--window-size=1280,4200", f"--screenshot={shot}", rendered.as_uri())
    assert shot.is_file(), res.stderr[-2000:]
    px = np.asarray(Image.open(shot).convert("RGB"))
    header_rows = np.nonzero(_near(px, HEADER_RGB, 6).sum(axis=1) > 100)[0]
    assert header_rows.size > 0, "no table header rendered"
    gallery = {name: np.nonzero(_near(px, rgb).sum(axis=1) > 40)[0] for name, rgb in
               (("generated", GEN_RGB), ("GT", GT_RGB), ("reference", REF_RGB))}
    for name, rows in gallery.items():
        assert rows.size > 0, f"no {name} thumbnail visible in the screenshot"
        assert rows.min() > header_rows.min(), f"{name} thumbnail above the first table"
    assert _near(px, BOX_RGB, 40).sum() > 200, "detected-face boxes not visible"


def test_report_sorts_by_metric_in_the_browser(rendered) -> None:
    res = chromium("--virtual-time-budget=3000", "--dump-dom", rendered.as_uri() + "#sort=sim_gt.arcface:desc")
    dom = res.stdout
    assert 'data-ready="1"' in dom, res.stderr[-2000:]
    assert 'data-sorted="sim_gt.arcface:desc"' in dom
    gallery = dom[dom.index('id="gallery"'):]
    order = re.findall(r'class="card[^"]*" id="case-([^"]+)"', gallery)
    # Sim(GT) 0.5, 0.4, 0.3, then the failed case without a value (missing values sort last)
    assert order == ["p1_0002", "p1_0001", "p1_0000", "p1_0003"]
    rows = re.findall(r'<tr data-id="([^"]+)"', dom)
    assert rows == order
