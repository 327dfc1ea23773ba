"""End to end in headless Chromium: invitation, instructions, rating by click and keyboard, resume after a
reload, a second rater in parallel; then the database rows, ``mbench study results`` and ``mbench
correlate STUDY`` (the same Table 7 numbers, checked against scipy on the runs' per-case rows).

Needs Debian's ``chromium`` (``.ci/run`` installs it) and Playwright (the ``study``/``test`` extras);
without them the test skips and says why.
"""
from __future__ import annotations

import json
import re
import shutil
import time
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from study_helpers import scipy_table7

from multiid_bench.cli.main import cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install 'multiid-bench[study]'")
expect = sync_api.expect
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _wait_images(page, timeout_s: float = 15.0) -> None:
    """Until every result image has loaded (polled with evaluate: wait_for_function would need 'unsafe-eval',
    which the page's Content-Security-Policy forbids)."""
    deadline = time.monotonic() + timeout_s
    script = "() => [...document.querySelectorAll('.result img')].every(i => i.complete && i.naturalWidth > 0)"
    while not page.evaluate(script):
        assert time.monotonic() < deadline, "result images did not load"
        time.sleep(0.05)


def _stars(page, slot: int, criterion: str, value: int) -> None:
    page.click(f'.rating[data-slot="{slot}"][data-crit="{criterion}"] .stars button[data-v="{value}"]')


def test_two_raters_in_chromium_then_results(make_study, demo_runs, tmp_path) -> None:
    from multiid_bench.study.criteria import CRITERION_IDS
    from multiid_bench.study.invite import invitation_url, invite_raters
    from multiid_bench.study.server import StudyServer

    study = make_study()
    rater_a, rater_b = invite_raters(study, 2, names=["ada", "bob"])
    clicked: dict[tuple[int, str], int] = {}
    with StudyServer(study) as server, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.set_default_timeout(15_000)
            page.goto(invitation_url(server.url, rater_a.token))
            assert page.is_visible("#intro") and "Copy-paste" in page.inner_text("#intro")
            page.click("#start")
            page.wait_for_selector(".result img")
            assert page.inner_text("#progress").startswith("Trial 1 of 3")
            assert page.is_disabled("#save")
            for slot in (0, 1):  # trial 1 by clicking
                for i, crit in enumerate(CRITERION_IDS):
                    value = 1 + (slot * 2 + i) % 5
                    _stars(page, slot, crit, value)
                    clicked[(slot, crit)] = value
            _wait_images(page)
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "study-trial-1366x768.png"
            page.screenshot(path=str(shot))
            page.click("#save")
            expect(page.locator("#progress")).to_have_text(re.compile("^Trial 2 of 3"))
            for key in "54321234":  # trial 2 by keyboard: fills result A's four criteria, then result B's
                page.keyboard.press(key)
            page.keyboard.press("Enter")
            expect(page.locator("#progress")).to_have_text(re.compile("^Trial 3 of 3"))
            # phone width: nothing scrolls sideways
            page.set_viewport_size({"width": 390, "height": 844})
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.set_viewport_size({"width": 1366, "height": 768})

            # reload: resumes at trial 3
            page.reload()
            expect(page.locator("#start")).to_contain_text("trial 3")
            assert "2 of 3" in page.inner_text("#progress")
            page.click("#start")
            expect(page.locator("#progress")).to_have_text(re.compile("^Trial 3 of 3"))

            # a second rater at the same time, in another browser context
            other = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
            other.set_default_timeout(15_000)
            other.goto(invitation_url(server.url, rater_b.token))
            other.click("#start")
            other.wait_for_selector(".result img")
            for key in "33334444":
                other.keyboard.press(key)
            other.keyboard.press("Enter")
            expect(other.locator("#progress")).to_have_text(re.compile("^Trial 2 of 3"))
            for key in "12345432":  # rater a finishes trial 3 meanwhile
                page.keyboard.press(key)
            page.keyboard.press("Enter")
            page.wait_for_selector("#done", state="visible")
        finally:
            browser.close()
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size == (1366, 768)

    con = sqlite3.connect(study / "study.sqlite")
    try:
        subs = dict(con.execute("SELECT rater_id, COUNT(*) FROM submissions GROUP BY rater_id").fetchall())
        assert subs == {rater_a.rater_id: 3, rater_b.rater_id: 1}
        got = dict(((slot, crit), stars) for slot, crit, stars in con.execute(
            "SELECT p.slot, g.criterion, g.stars FROM ratings g JOIN presentations p ON p.rater_id = g.rater_id AND "
            "p.trial_id = g.trial_id AND p.run_id = g.run_id JOIN trials t ON t.id = g.trial_id "
            "WHERE g.rater_id = ? AND t.position = 0", (rater_a.rater_id,)))
        assert got == clicked
        keyed = dict(((slot, crit), stars) for slot, crit, stars in con.execute(
            "SELECT p.slot, g.criterion, g.stars FROM ratings g JOIN presentations p ON p.rater_id = g.rater_id AND "
            "p.trial_id = g.trial_id AND p.run_id = g.run_id JOIN trials t ON t.id = g.trial_id "
            "WHERE g.rater_id = ? AND t.position = 1", (rater_a.rater_id,)))
        assert keyed == {(s, c): int("54321234"[s * 4 + i]) for s in (0, 1) for i, c in enumerate(CRITERION_IDS)}
    finally:
        con.close()

    out = tmp_path / "results"
    res = CliRunner().invoke(cli, ["study", "results", str(study), "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "Table 7" in res.output and "0.4417" in res.output  # the paper's values are printed alongside
    for name in ("fig8.png", "fig8.pdf", "fig8.csv", "agreement.csv", "table7.csv", "results.json"):
        assert (out / name).stat().st_size > 0
    payload = json.loads((out / "results.json").read_text())
    assert payload["raters"] == 2 and payload["trials"] == 3 and payload["ratings"] == 4 * 2 * 4
    row = next(r for r in payload["table7"] if r["metric"] == "copy_paste.dlib")
    assert row["pearson"] == pytest.approx(scipy_table7(study, demo_runs, "copy_paste", "copy_paste.dlib")["pearson"],
                                           abs=1e-12)

    cor = CliRunner().invoke(cli, ["correlate", str(study), "--metric", "copy_paste.dlib", "--within-case-ranks",
                                   "--json"], catch_exceptions=False)
    assert cor.exit_code == 0, cor.output
    as_json = json.loads(cor.stdout[cor.stdout.index("{"):])
    assert as_json["stats"]["pearson"][0] == pytest.approx(row["pearson"], abs=1e-12) and as_json["n"] == row["n"]

