"""OmniContext end to end with two judges (issue 24's "done when").

A scripted OpenAI-compatible judge runs on 127.0.0.1 (bounded: a daemon thread, every request counted). A
small OmniContext bench is exported with ``export_omnicontext`` and its images scored through the CLI twice,
by ``gpt-4.1`` and by ``Qwen/Qwen2.5-VL-7B-Instruct``, with ``--subset paper``. Then:

* each run prints its PF / SC / Overall table on the console (and the paper's prompt set is the default);
* ``leaderboard`` does not rank the two runs together, and ranks only the Qwen-judged run next to Table 1b;
* ``--paper-table 1b`` lists the measured runs (``single-character`` == ``single_character``);
* ``compare`` refuses (exit 2) naming the judge;
* a judge outage (503 storm) and an unparseable answer leave failed rows (exit 4), and resuming the same
  ``--out`` asks again exactly those answers, never a cached good one;
* a judge that cannot be reached at all stops the run with exit 7.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.local_server import serving
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # ~1 min: the offline face profile loads per run

KEYS = ("anna", "ben", "cleo")
# judge model -> (PF, SC) per case key; SC differs per model, as real judges do
SCORES = {"gpt-4.1": {"anna": (9, 8), "ben": (8, 6), "cleo": (7, 9)},
          "Qwen/Qwen2.5-VL-7B-Instruct": {"anna": (6, 6), "ben": (8, 2), "cleo": (4, 9)}}


class _Judge(BaseHTTPRequestHandler):
    calls: Counter = Counter()  # (model, key, kind) -> requests
    outage: set[tuple[str, str]] = set()  # (key, kind) answered 503 every time
    garbled: set[tuple[str, str]] = set()  # (key, kind) answered with text holding no score

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][0]["content"][0]["text"]
        key = text.rsplit("Editing instruction: ", 1)[1].split()[0]
        kind = "pf" if "fulfills the editing instruction" in text else "sc"
        cls = type(self)
        cls.calls[(body["model"], key, kind)] += 1
        if (key, kind) in cls.outage:
            data = json.dumps({"error": {"message": "server overloaded", "code": "overloaded"}}).encode()
            self.send_response(503)
            self.send_header("Retry-After", "0")
        else:
            pf, sc = SCORES[body["model"]][key]
            answer = "I cannot tell." if (key, kind) in cls.garbled else json.dumps({"score": pf if kind == "pf" else sc})
            data = json.dumps({"choices": [{"message": {"content": answer}}]}).encode()
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def judge_url() -> Iterator[str]:
    with serving(_Judge, "/v1") as url:
        yield url


@pytest.fixture(scope="module")
def bench_and_images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An exported OmniContext folder (export_omnicontext's layout) and generated images in OmniContext's layout."""
    from multiid_bench.data.omnicontext import export_omnicontext, load_omnicontext

    root = tmp_path_factory.mktemp("oc")
    raw, gen = root / "raw", root / "gen"
    lines = []
    for i, key in enumerate(KEYS):
        rel = f"images/single_character/{key}_0.png"
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (48, 64), (60 * i, 120, 30)).save(raw / rel)
        lines.append({"key": key, "task_type": "single_character", "instruction": f"{key} reads a book in a cafe.",
                      "instruction_language": "en", "input_images": [rel]})
        (gen / "single_character").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 64), (20, 60 * i, 90)).save(gen / "single_character" / f"{key}.png")
    (raw / "omnicontext.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    exported = export_omnicontext(load_omnicontext(raw).bench, root / "exported")
    assert (exported / "omnicontext.jsonl").is_file() and (exported / "images" / "single_character").is_dir()
    return exported, gen


def _mbench(args: list[str]) -> Any:
    """``mbench ARGS`` in-process, errors mapped to exit codes as the console script maps them."""
    import click
    from click.testing import CliRunner

    from multiid_bench.cli._errors import run_with_error_mapping
    from multiid_bench.cli.main import cli

    @click.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
    @click.argument("argv", nargs=-1, type=click.UNPROCESSED)
    def mbench(argv: tuple[str, ...]) -> None:
        raise SystemExit(run_with_error_mapping(cli, list(argv), debug=False))

    return CliRunner().invoke(mbench, args, catch_exceptions=False)


def _out(res: Any) -> str:
    return res.output


def _score(bench: Path, gen: Path, url: str, model: str, name: str, out: Path, cache: Path) -> Any:
    return _mbench(["score", "--images", str(gen), "--bench", str(bench), "--subset", "paper", "--name", name,
                    "--profile", "offline", "--device", "cpu", "--no-scorers", "--cache-dir", str(cache),
                    "--out", str(out), "--judge", "http", "--judge-url", url, "--judge-model", model])


def _markdown_text(md: str) -> str:
    """Markdown as a reader sees it: every table format escapes names (``single\\_character``)."""
    return re.sub(r"\\([\\`*_{}\[\]()#+\-.!|<>])", r"\1", md)


def test_two_judges_are_never_ranked_together(bench_and_images: tuple[Path, Path], judge_url: str,
                                              tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bench, gen = bench_and_images
    _Judge.calls.clear()
    gpt = _score(bench, gen, judge_url, "gpt-4.1", "gpt-judged", tmp_path / "gpt", tmp_path / "cache")
    assert gpt.exit_code == 0, _out(gpt)
    qwen = _score(bench, gen, judge_url, "Qwen/Qwen2.5-VL-7B-Instruct", "qwen-judged", tmp_path / "qwen",
                  tmp_path / "cache")
    assert qwen.exit_code == 0, _out(qwen)

    # the console shows PF / SC / Overall per task type, with the judge and the paper's prompt set
    # gpt-4.1: PF (9+8+7)/3 = 8, SC (8+6+9)/3 = 7.67, Overall mean(sqrt(72), sqrt(48), sqrt(63)) = 7.78
    text = _out(gpt)
    assert "judge http:gpt-4.1@unpinned" in text and "face-identity-" in text
    assert re.search(r"single_character\s*│\s*3\s*│\s*0\s*│\s*0\s*│\s*0\s*│\s*8\.00\s*│\s*7\.67\s*│\s*7\.78", text), text
    assert "Sim(GT)" not in text  # no empty face table
    # Qwen: PF 6, SC 5.67, Overall mean(6, 4, 6) = 5.33
    assert re.search(r"single_character\s*│\s*3\s*│.*│\s*6\.00\s*│\s*5\.67\s*│\s*5\.33", _out(qwen)), _out(qwen)
    res = json.loads((tmp_path / "qwen" / "results.json").read_text())
    assert res["config"]["judge"]["prompts"] == "face-identity" and res["config"]["judge"]["weights"] is None
    assert res["judge"]["model"] == "Qwen/Qwen2.5-VL-7B-Instruct" and res["judge"]["size"] == "7b"
    assert res["judge"]["prompt_variant"] == "face-identity" and res["judge"]["work"]["questions"] == 6
    assert "| single_character | 3 | 0 | 0 | 0 | 6.00 | 5.67 | 5.33 |" in (tmp_path / "qwen" / "summary.md").read_text()

    # the two runs are not ranked together: the later one is greyed with the judge named
    lb = _mbench(["leaderboard", str(tmp_path / "gpt"), str(tmp_path / "qwen"), "--subset", "single_character",
                  "--format", "markdown"])
    assert lb.exit_code == 0, _out(lb)
    table = _markdown_text(_out(lb))
    assert "qwen-judged: not ranked, not comparable with gpt-judged (judge Qwen2.5-VL-7B-Instruct vs gpt-4.1)" in table
    assert table.startswith("**OmniContext leaderboard · subset single_character")
    assert "judge gpt-4.1 (http), prompts face-identity" in table  # the judge next to PF/SC

    # no --subset: an OmniContext run has no p1, so the leaderboard shows the paper's main OmniContext subset
    # (Table 1b's single_character) and says that it chose it, instead of an empty p1 table
    lb = _mbench(["leaderboard", str(tmp_path / "qwen"), "--format", "markdown"])
    assert lb.exit_code == 0, _out(lb)
    table = _markdown_text(_out(lb))
    assert table.startswith("**OmniContext leaderboard · subset single_character"), table
    assert "qwen-judged" in table and "chosen because the runs have no p1" in table

    # with the paper's Table 1b: both measured runs are listed; only the Qwen-judged one is ranked
    lb = _mbench(["leaderboard", str(tmp_path / "gpt"), str(tmp_path / "qwen"), "--include-paper",
                  "--paper-table", "1b", "--format", "markdown"])
    assert lb.exit_code == 0, _out(lb)
    table = _markdown_text(_out(lb))
    assert "gpt-judged" in table and "qwen-judged" in table and "OmniGen2" in table
    assert "gpt-judged: not ranked, not comparable with the paper's Table 1b (judge gpt-4.1 vs Qwen2.5-VL" in table
    assert "qwen-judged: not ranked" not in table

    # the HTML report of a judged run compares against Table 1b and shows the judge next to PF/SC
    rep = _mbench(["report", str(tmp_path / "qwen"), "--out", str(tmp_path / "qwen.html")])
    assert rep.exit_code == 0, _out(rep)
    html = (tmp_path / "qwen.html").read_text()
    assert "paper Table 1b" in html and "Table 1a" not in html
    assert "judge Qwen2.5-VL-7B-Instruct (http), prompts face-identity" in html and "PF" in html

    # compare refuses, naming the judge
    cmp = _mbench(["compare", str(tmp_path / "gpt"), str(tmp_path / "qwen")])
    assert cmp.exit_code == 2, _out(cmp)
    assert "judge gpt-4.1 vs Qwen2.5-VL-7B-Instruct" in _out(cmp)


def test_outage_then_resume_reasks_exactly_the_failed_answers(bench_and_images: tuple[Path, Path], judge_url: str,
                                                               tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bench, gen = bench_and_images
    model = "Qwen/Qwen2.5-VL-7B-Instruct"
    _Judge.calls.clear()
    _Judge.outage, _Judge.garbled = {("ben", "sc")}, {("cleo", "pf")}
    try:
        first = _score(bench, gen, judge_url, model, "qwen-judged", tmp_path / "run", tmp_path / "cache")
    finally:
        _Judge.outage, _Judge.garbled = set(), set()
    assert first.exit_code == 4, _out(first)  # partial: two cases failed
    # bounded: 3 judge attempts x (1 + the transport's 3 retries on 503, Retry-After 0), then a failed row
    assert _Judge.calls[(model, "ben", "sc")] == 12
    assert _Judge.calls[(model, "cleo", "pf")] == 1  # greedy judge: an unparseable answer is not re-asked at once
    rows = {json.loads(line)["case_id"]: json.loads(line) for line in (tmp_path / "run" / "cases.jsonl").read_text().splitlines()}
    assert "HTTP 503" in rows["single_character__ben"]["reason"] and "overloaded" in rows["single_character__ben"]["reason"]
    assert rows["single_character__anna"]["status"] == "ok"

    _Judge.calls.clear()
    with caplog.at_level("WARNING"):
        again = _score(bench, gen, judge_url, model, "qwen-judged", tmp_path / "run", tmp_path / "cache")
    assert again.exit_code == 0, _out(again)
    assert dict(_Judge.calls) == {(model, "ben", "sc"): 1, (model, "cleo", "pf"): 1}  # exactly the failed answers
    assert "asking the judge again for 2 answer(s) of 2 case(s)" in caplog.text + _out(again)
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["counts"]["failed"] == 0
    assert res["metrics"]["paper"]["single_character"]["overall"]["value"] == pytest.approx((6 + 4 + 6) / 3)

    _Judge.calls.clear()  # resuming a complete run asks nothing
    third = _score(bench, gen, judge_url, model, "qwen-judged", tmp_path / "run", tmp_path / "cache")
    assert third.exit_code == 0 and not _Judge.calls


def test_an_unreachable_judge_stops_the_run_with_exit_7(bench_and_images: tuple[Path, Path], tmp_path: Path) -> None:
    import socket

    bench, gen = bench_and_images
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    res = _score(bench, gen, dead, "gpt-4.1", "nobody", tmp_path / "run", tmp_path / "cache")
    assert res.exit_code == 7, _out(res)
    assert "cannot be reached" in _out(res)
    assert not (tmp_path / "run" / "results.json").exists()
