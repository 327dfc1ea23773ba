"""Item 8: a model name with a newline or markup characters is escaped in every table format."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from runner_fakes import make_world, run

from multiid_bench.cli._errors import run_with_error_mapping
from multiid_bench.cli.main import cli
from multiid_bench.leaderboard.render import latex_escape, markdown_escape

EVIL = "evil\n\\input{/etc/passwd}\r\n| x | *y* <b>z</b>"


@pytest.fixture(scope="module")
def evil_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("escape")
    out = root / "run"
    run(make_world(root / "bench", persons=(1, 2)), "ground-truth", out, root / "cache")
    data = json.loads((out / "results.json").read_text())
    data["model"] = EVIL
    (out / "results.json").write_text(json.dumps(data))
    return out


def _table(run_dir: Path, fmt: str, *extra: str) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = run_with_error_mapping(cli, ["leaderboard", str(run_dir), "--format", fmt, *extra], debug=True)
    assert code == 0
    return buf.getvalue()


def test_latex_never_gets_a_live_line_from_a_name(evil_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(evil_run, other)  # two runs, one not comparable: its name goes into a comment line too
    data = json.loads((other / "results.json").read_text())
    data["protocol"] = "strict"
    (other / "results.json").write_text(json.dumps(data))
    text = _table(evil_run, "latex") + _table(other, "latex", "--allow-mixed")
    for line in text.splitlines():
        assert "\\input" not in line or line.startswith("%") or "\\textbackslash{}input" in line, line
    assert not any(line.startswith("\\input") for line in text.splitlines())


def test_markdown_rows_stay_rows(evil_run: Path) -> None:
    rows = [line for line in _table(evil_run, "markdown").splitlines() if line.startswith("|")]
    assert len(rows) == 3  # header, rule, one model row
    assert "\\|" in rows[2] and "\\*y\\*" in rows[2] and "\\<b\\>" in rows[2]


def test_html_and_csv_quote_the_name(evil_run: Path) -> None:
    html = _table(evil_run, "html")
    assert "<b>z</b>" not in html and "&lt;b&gt;z&lt;/b&gt;" in html
    parsed = list(csv.reader(io.StringIO(_table(evil_run, "csv"))))
    assert parsed[1][0] == EVIL.replace("\r\n", "\n") or parsed[1][0] == EVIL


def test_escape_helpers() -> None:
    assert "\n" not in latex_escape("a\nb") and "\n" not in markdown_escape("a\nb")
    assert markdown_escape("a|b") == "a\\|b"


def test_report_from_another_directory_keeps_the_generated_images(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from multiid_bench.leaderboard.report import build_report

    world = make_world(tmp_path / "bench", persons=(1, 2))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    run(world, "ground-truth", Path("runs/x"), tmp_path / "cache")  # rows record runs/x/images/<case>.png
    monkeypatch.chdir(tmp_path)
    page = build_report(tmp_path / "work" / "runs" / "x", tmp_path / "r.html", include_paper=False, thumb=64).read_text()
    views = sum(2 + c.num_persons for c in world.bench.cases)  # generated + GT + references
    assert page.count("data:image/jpeg;base64,") == views
