"""``mbench report RUN_A RUN_B``: paired comparison + one gallery row per case, checked in headless Chromium."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from lb_fixtures import GEN_RGB, GT_RGB, base_results, demo_cases, write_run
from PIL import Image

from tests.headless_chromium import chromium, require_chromium

from multiid_bench.cli.main import main
from multiid_bench.leaderboard.report_pair import build_pair_report

B_RGB = (20, 200, 40)  # run B's generated images: a colour no other image has


def _near(arr: np.ndarray, rgb: tuple[int, int, int], tol: int = 14) -> np.ndarray:
    return (np.abs(arr[..., :3].astype(int) - np.array(rgb)) <= tol).all(axis=-1)


def _two_runs(root: Path, **b_over) -> tuple[Path, Path]:
    """A: Sim(GT) 0.3, 0.4, 0.5, failed; B: the same cases, its own images, Sim(GT) 0.6, 0.4, 0.2, 0.3."""
    a = write_run(root / "a", base_results(model="uno"), demo_cases(root / "a"))
    b_rows = demo_cases(root / "b", fail_last=False)
    for row, sim in zip(b_rows, (0.6, 0.4, 0.2, 0.3)):
        row["scores"]["paper"]["arcface"]["sim_gt"] = sim
        Image.new("RGB", (160, 120), B_RGB).save(root / "b" / row["images"]["generated"])
    b = write_run(root / "b", base_results(model="mine", **b_over), b_rows)
    return a, b


def test_pair_report_has_paired_ci_table_and_per_case_differences(tmp_path) -> None:
    a, b = _two_runs(tmp_path)
    html = build_pair_report([a, b], tmp_path / "cmp.html").read_text(encoding="utf-8")
    assert "A: uno" in html and "B: mine" in html and "paired over the shared cases" in html
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:|file:|/)', html)
    cards = re.findall(r'id="case-([^"]+)" data-id="[^"]+" data-metrics="([^"]+)"', html)
    data = {cid: json.loads(m.replace("&quot;", '"')) for cid, m in cards}
    assert data["p1_0000"]["Δsim_gt.arcface@1"] == pytest.approx(0.3)
    assert data["p1_0002"]["Δsim_gt.arcface@1"] == pytest.approx(-0.3)
    assert data["p1_0003"]["Δsim_gt.arcface@1"] is None  # A failed there: no difference, sorted last
    assert 'value="Δsim_gt.arcface@1"' in html and 'value="sim_gt.arcface@0"' in html


def test_pair_report_refuses_runs_that_are_not_comparable(tmp_path, capsys) -> None:
    a, b = _two_runs(tmp_path, profile={"name": "offline"})
    with pytest.raises(SystemExit) as e:
        main(["report", str(a), str(b), "--out", str(tmp_path / "x.html")])
    assert e.value.code == 2 and "profile paper vs offline" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()
    with pytest.raises(SystemExit) as e:
        main(["report", str(a), str(b), "--allow-mixed", "--out", str(tmp_path / "y.html")])
    assert e.value.code == 0 and "--allow-mixed: compared although profile" in (tmp_path / "y.html").read_text()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    require_chromium()
    root = tmp_path_factory.mktemp("pair")
    a, b = _two_runs(root)
    return build_pair_report([a, b], root / "cmp.html")


def test_pair_report_screenshot_shows_both_runs_images_in_one_row(rendered, tmp_path) -> None:
    shot = tmp_path / "shot.png"
    res = chromium("--window-size=1400,2400", f"--screenshot={shot}", rendered.as_uri())
    assert shot.is_file(), res.stderr[-2000:]
    px = np.asarray(Image.open(shot).convert("RGB"))
    a_rows, b_rows, gt_rows = (np.nonzero(_near(px, rgb).sum(axis=1) > 40)[0] for rgb in (GEN_RGB, B_RGB, GT_RGB))
    assert a_rows.size and b_rows.size and gt_rows.size, "a run's generated image or the GT is not visible"
    # the first case's row: A's image, B's image and the GT share the same band of screen rows
    first = lambda rows: rows[rows < rows.min() + 150]  # noqa: E731
    assert len(set(first(a_rows)) & set(first(b_rows)) & set(first(gt_rows))) > 50
    a_cols = np.nonzero(_near(px, GEN_RGB).sum(axis=0) > 40)[0]
    b_cols = np.nonzero(_near(px, B_RGB).sum(axis=0) > 40)[0]
    assert a_cols.max() < b_cols.min(), "B's image is not to the right of A's"


def test_pair_report_sorts_by_the_per_case_difference_in_the_browser(rendered) -> None:
    res = chromium("--virtual-time-budget=3000", "--dump-dom", rendered.as_uri() + "#sort=Δsim_gt.arcface@1:desc")
    dom = res.stdout
    assert 'data-ready="1"' in dom, res.stderr[-2000:]
    assert 'data-sorted="Δsim_gt.arcface@1:desc"' in dom
    gallery = dom[dom.index('id="gallery"'):]
    # B − A: +0.3, 0.0, −0.3, then the case A failed (no difference) last
    assert re.findall(r'class="card[^"]*" id="case-([^"]+)"', gallery) == ["p1_0000", "p1_0001", "p1_0002", "p1_0003"]
    res = chromium("--virtual-time-budget=3000", "--dump-dom", rendered.as_uri() + "#sort=Δsim_gt.arcface@1:asc")
    gallery = res.stdout[res.stdout.index('id="gallery"'):]
    assert re.findall(r'class="card[^"]*" id="case-([^"]+)"', gallery) == ["p1_0002", "p1_0001", "p1_0000", "p1_0003"]


def test_reference_captions_name_the_identity_not_the_crop_file(tmp_path) -> None:
    from multiid_bench.leaderboard.report import build_report

    root = tmp_path / "r"
    rows = demo_cases(root)
    crop = "cea9bf676dfe315333b843415eb3ceec29ac590ae34d5cb226ed5cc4952653ff.jpg"
    Image.new("RGB", (100, 100), (250, 140, 0)).save(root / crop)
    rows[0]["images"]["refs"] = [{"path": crop, "identity": "ada_lovelace", "source": "refs/ada.png"}]
    rows[1]["images"]["refs"] = [{"path": crop, "source": "/bench/refs/grace_hopper.jpg"}]
    run = write_run(root, base_results(), rows)
    html = build_report(run, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<b>ref 1 · ada_lovelace</b>" in html and "<b>ref 1 · grace_hopper.jpg</b>" in html
    assert crop not in html
    a, b = _two_runs(tmp_path / "pair")
    rows_a = [json.loads(line) for line in (a / "cases.jsonl").read_text().splitlines()]
    rows_a[0]["images"]["refs"] = [{"path": "p1_0000_ref0.png", "identity": "ada_lovelace"}]
    (a / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_a))
    pair = build_pair_report([a, b], tmp_path / "cmp.html").read_text(encoding="utf-8")
    assert "<b>ref 1 · ada_lovelace</b>" in pair


def test_single_run_report_leaderboard_fits_a_1400px_window(tmp_path) -> None:
    """No table of the report (the leaderboard with its provenance column included) runs past the window."""
    require_chromium()
    from multiid_bench.leaderboard.report import build_report

    root = tmp_path / "run"
    results = base_results(model="a-model-with-a-long-name", profile={"name": "offline-dlib-mtcnn", "entries": []})
    page = build_report(write_run(root, results, demo_cases(root)), tmp_path / "r.html", max_cases=1)
    shot = tmp_path / "shot.png"
    chromium("--window-size=1400,2200", f"--screenshot={shot}", page.as_uri())
    px = np.asarray(Image.open(shot).convert("RGB"))
    header = _near(px, (0x1F, 0x4E, 0x79), 6)  # table header background (render.HTML_STYLE)
    tall = [r for r in np.nonzero(header.sum(axis=1) > 100)[0] if header[max(0, r - 8):r + 8].sum(axis=1).min() > 100]
    assert tall, "no table header in the screenshot"
    right = max(int(np.nonzero(header[r])[0].max()) for r in tall)
    assert right < 1400 - 10, f"a table reaches x={right}: wider than a 1400 px window"
