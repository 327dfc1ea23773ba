"""The five commands through the real ``mbench`` group (CliRunner) and the lazy-import rule."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner

from multiid_bench.cli.main import cli


def _invoke(*args: str):
    res = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return res


@pytest.mark.parametrize("fmt,needle", [("markdown", "| InstantID | **0.464¹**"), ("csv", "sim_gt.average.rank"),
                                        ("latex", r"\textbf{0.464}"), ("html", "<table class=\"mbench\">"),
                                        ("rich", "InstantID")])
def test_leaderboard_formats(fmt, needle) -> None:
    res = _invoke("leaderboard", "--include-paper", "--format", fmt)
    assert res.exit_code == 0, res.output
    assert needle in res.output


def test_leaderboard_measured_with_paper_and_out_file(make_run, tmp_path) -> None:
    run = make_run("r", model="mine", reportable=False)
    out = tmp_path / "lb.md"
    res = _invoke("leaderboard", str(run), "--subset", "p1", "--protocol", "strict", "--include-paper",
                  "--format", "markdown", "--out", str(out))
    assert res.exit_code == 0 and out.is_file()
    text = out.read_text()
    assert "| mine | 0.420 ± 0.020" in text and "NOT reportable" in text and "reported in the paper, Table 1a" in text
    from multiid_bench.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["leaderboard", "--subset", "p9"])
    assert e.value.code == 2


def test_plot_tradeoff_writes_png_svg_csv(make_run, tmp_path) -> None:
    run = make_run("r", model="UNO")
    res = _invoke("plot-tradeoff", str(run), "--subset", "p1", "--out", str(tmp_path / "plots" / "fig"))
    assert res.exit_code == 0, res.output
    for suffix in (".png", ".svg", ".csv"):
        assert (tmp_path / "plots" / f"fig{suffix}").is_file()
    df = pd.read_csv(tmp_path / "plots" / "fig.csv")
    assert set(df[df.model == "uno"].provenance) == {"paper", "measured"}


def test_report_command(make_run, tmp_path) -> None:
    res = _invoke("report", str(make_run("r")), "--out", str(tmp_path / "rep.html"), "--max-cases", "2")
    assert res.exit_code == 0 and "wrote" in res.output
    html = (tmp_path / "rep.html").read_text()
    assert "Gallery shows the first 2 of 4 cases" in html


def test_help_imports_no_heavy_module() -> None:
    code = ("import sys\nfrom click.testing import CliRunner\nfrom multiid_bench.cli.main import cli\n"
            "for c in ('leaderboard', 'plot-tradeoff', 'report', 'compare', 'correlate'):\n"
            "    r = CliRunner().invoke(cli, [c, '--help'])\n    assert r.exit_code == 0, r.output\n"
            "heavy = [m for m in ('pandas', 'matplotlib', 'torch', 'PIL.ImageDraw') if m in sys.modules]\n"
            "assert not heavy, heavy\nimport multiid_bench.leaderboard\nassert 'pandas' not in sys.modules\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_documented_workflow_uses_real_commands_and_options() -> None:
    """The GitHub Actions example must not rot: every mbench command and --option in it exists."""
    import re
    from pathlib import Path

    import yaml

    from multiid_bench.cli.main import COMMANDS, LazyGroup

    wf = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "mbench-compare.yml"
    doc = yaml.safe_load(wf.read_text())
    script = "\n".join(s.get("run", "") for s in doc["jobs"]["compare"]["steps"]).replace("\\\n", " ")
    calls = re.findall(r"\bmbench (\S+)([^\n|>]*)", script)
    assert {c for c, _ in calls} >= {"evaluate", "compare", "report"}
    group = LazyGroup()
    for name, args in calls:
        assert name in COMMANDS, name
        cmd = group.get_command(None, name)  # type: ignore[arg-type]
        known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
        for opt in re.findall(r"(?<!\S)(--[a-z-]+)", args):
            assert opt in known, f"mbench {name} has no option {opt}"
