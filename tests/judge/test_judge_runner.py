"""OmniContext end to end through the runner: dummy generator -> offline face profile -> scripted judge server.

Checks the integration, not the maths (tested in test_judge.py): rows carry PF/SC/Overall in
``general``, a judge failure is a failed row with the raw answer in its notes, OmniContext cases are not
failed for having no GT or no face, ``--subset paper`` plans only single-character cases, and
``results.json`` holds the hand-computed means per task type and OmniContext's unweighted ``Average``.
"""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.local_server import serving
from PIL import Image

pytestmark = pytest.mark.slow  # ~15 s: loads the offline face profile (MTCNN + dlib)

# instruction tag -> (PF answer, SC answer)
ANSWERS = {
    "c1": ('{"score": 6}', '{"score": 6}'), "c2": ('{"score": 9}', "Score: 1"),
    "o1": ("2", '{"score": 8, "reasoning": "same cup"}'),
    "s1": ('{"score": 8}', '{"score": 2}'), "s2": ('{"score": 5}', "The identities look alike."),
}
CASES = [("single_character", "c1", 1), ("single_character", "c2", 1), ("single_object", "o1", 1),
         ("scene_character", "s1", 2), ("scene_character", "s2", 2)]


class _Judge(BaseHTTPRequestHandler):
    asked: list[str] = []  # instruction tag + pf/sc per request

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][0]["content"][0]["text"]
        tag = text.rsplit("Editing instruction: ", 1)[1].split()[0]
        type(self).asked.append(tag + ("pf" if "fulfills the editing" in text else "sc"))
        pf, sc = ANSWERS[tag]
        data = json.dumps({"choices": [{"message": {"content": pf if "fulfills the editing" in text else sc}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def judge_url() -> Iterator[str]:
    with serving(_Judge, "/v1") as url:
        yield url


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("omnicontext_export")
    lines = []
    for i, (tt, key, n) in enumerate(CASES):
        rels = []
        for k in range(n):
            rel = f"images/{tt}/{key}_{k}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (48, 64), (40 * i, 100 + 50 * k, 30)).save(root / rel)
            rels.append(rel)
        lines.append({"key": key, "task_type": tt, "instruction": f"{key} walks in a park.",
                      "instruction_language": "en", "input_images": rels})
    (root / "omnicontext.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def _run(bench: Path, judge_url: str, out: Path, cache: Path, subsets: tuple[str, ...] | None = None) -> Any:
    from multiid_bench.adapters import get_adapter
    from multiid_bench.runner import RunConfig, run_evaluation
    from multiid_bench.runner.sources import AdapterSource
    from multiid_bench.judge.settings import judge_settings

    config = RunConfig(model="dummy", bench=str(bench), subsets=subsets, profile="offline", protocol="strict",
                       device="cpu", offline=True, cache_dir=str(cache), scorers=False, bootstrap_resamples=200,
                       judge=judge_settings(backend="http", url=judge_url, model="Qwen/Qwen2.5-VL-7B-Instruct",
                                            revision="cc594898137f460bfe9f0759e9844b3ce807cfb5"))
    source = AdapterSource(get_adapter("dummy", long_side=96), out, global_seed=0)
    return run_evaluation(config, out, source)


def test_omnicontext_run_with_a_scripted_judge(bench: Path, judge_url: str, tmp_path: Path) -> None:
    outcome = _run(bench, judge_url, tmp_path / "run", tmp_path / "cache")
    res = outcome.results
    assert res is not None and outcome.exit_code == 4  # one judge failure -> partial
    assert res["counts"]["expected"] == 5 and res["counts"]["failed"] == 1 and res["counts"]["ok"] == 4
    rows = {}
    for f in sorted((tmp_path / "run").glob("cases*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            rows[r["case_id"]] = r
    assert rows["single_character__c1"]["status"] == "ok"
    assert rows["single_character__c1"]["general"] == {"prompt_following": 6.0, "subject_consistency": 6.0, "overall": 6.0}
    assert any("no GT" in n for n in rows["single_character__c1"]["notes"])  # a note, not a failure
    bad = rows["scene_character__s2"]
    assert bad["status"] == "failed" and bad["reason"].startswith("judge: ")
    assert bad["general"] == {"prompt_following": 5.0, "subject_consistency": None, "overall": None}
    assert any("The identities look alike." in n for n in bad["notes"])

    m = res["metrics"]["paper"]
    sc, so, scene = m["single_character"], m["single_object"], m["scene_character"]
    assert [sc[k]["value"] for k in ("prompt_following", "subject_consistency", "overall")] == [7.5, 3.5, 4.5]
    assert [so[k]["value"] for k in ("prompt_following", "subject_consistency", "overall")] == [2.0, 8.0, 4.0]
    assert [scene[k]["value"] for k in ("prompt_following", "subject_consistency", "overall")] == [8.0, 2.0, 4.0]
    assert (scene["overall"]["n"], scene["overall"]["failed"]) == (1, 1)
    allb = m["all"]
    assert allb["prompt_following"]["value"] == pytest.approx(17.5 / 3, abs=1e-12)
    assert allb["subject_consistency"]["value"] == pytest.approx(4.5, abs=1e-12)
    assert allb["overall"]["value"] == pytest.approx(12.5 / 3, abs=1e-12)
    assert sc["overall"]["judge"] == "http:Qwen/Qwen2.5-VL-7B-Instruct@cc594898137f460bfe9f0759e9844b3ce807cfb5"
    assert sc["overall"]["prompt_version"].startswith("omnicontext-")
    strict = res["metrics"]["strict"]["single_character"]["overall"]
    assert strict["value"] == 4.5 and strict["ci95"] is not None
    assert res["scorers"]["vlm-judge"]["status"] == "ok"
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "| single_character | 2 | 0 | 0 | 0 | 7.50 | 3.50 | 4.50 |" in summary


def test_paper_preset_through_the_python_api(bench: Path, judge_url: str, tmp_path: Path) -> None:
    import multiid_bench as mb
    from multiid_bench.judge.settings import judge_settings

    run = mb.evaluate("dummy", bench=str(bench), subsets="paper", profile="offline", protocol="strict", device="cpu",
                      out=tmp_path / "run", cache_dir=str(tmp_path / "cache"), scorers=False, progress=False,
                      settings={"long_side": 96},
                      judge=judge_settings(backend="http", url=judge_url, model="Qwen/Qwen2.5-VL-7B-Instruct"))
    res = run.summary
    assert res["counts"]["expected"] == 2 and res["counts"]["failed"] == 0
    assert set(k for k in res["metrics"]["paper"] if "overall" in res["metrics"]["paper"][k]) == {"single_character", "all"}
    assert res["metrics"]["paper"]["all"]["overall"]["value"] == 4.5


def test_tiny_local_qwen_judge_through_the_runner(bench: Path, tmp_path: Path) -> None:
    """The transformers backend in a real run: a random tiny Qwen2.5-VL answers noise -> every row failed, counted."""
    pytest.importorskip("transformers")
    from test_judge_qwen import _tiny_qwen  # same folder; pytest puts it on sys.path

    import multiid_bench as mb
    from multiid_bench.judge.settings import judge_settings

    model_dir = _tiny_qwen(tmp_path / "tiny_qwen")
    run = mb.evaluate("dummy", bench=str(bench), profile="offline", protocol="strict", device="cpu",
                      out=tmp_path / "run", cache_dir=str(tmp_path / "cache"), scorers=False, progress=False,
                      settings={"long_side": 96},
                      judge=judge_settings(model_dir=model_dir, batch_size=3, max_new_tokens=4))
    res = run.summary
    assert res["counts"]["failed"] == 5 and res["counts"]["ok"] == 0
    assert res["scorers"]["vlm-judge"]["status"] == "ok"
    m = res["metrics"]["paper"]["single_character"]["overall"]
    assert (m["value"], m["n"], m["failed"]) == (None, 0, 2)
    assert m["judge"].startswith("transformers:tiny_qwen@local-")
    assert res["metrics"]["paper"]["all"]["overall"]["value"] is None


def test_cli_evaluate_omnicontext_with_an_http_judge(bench: Path, judge_url: str, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from multiid_bench.cli.main import cli

    args = ["evaluate", "--model", "dummy", "-S", "long_side=96", "--bench", str(bench), "--subset", "paper",
            "--profile", "offline", "--device", "cpu", "--no-scorers", "--cache-dir", str(tmp_path / "cache"),
            "--out", str(tmp_path / "run"), "--judge", "http", "--judge-url", judge_url,
            "--judge-model", "Qwen/Qwen2.5-VL-7B-Instruct", "--judge-prompts", "face-identity"]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    entry = results["metrics"]["paper"]["single_character"]["overall"]
    assert entry["value"] == 4.5 and entry["prompt_version"].startswith("face-identity-")
    assert results["config"]["judge"]["prompts"] == "face-identity" and results["config"]["subsets"] == ["single_character"]


def test_resume_reasks_the_failed_judge_answer_also_with_retry_failed(bench: Path, judge_url: str, tmp_path: Path) -> None:
    """Evaluate (adapter source): the resumed run re-asks only s2's unusable SC answer, with and without
    --retry-failed (which is about generation); the generated images are reused, good answers cached."""
    import multiid_bench as mb
    from multiid_bench.judge import judge_settings

    def run(retry_failed: bool) -> Any:
        return mb.evaluate("dummy", bench=str(bench), profile="offline", protocol="strict", device="cpu",
                           out=tmp_path / "run", cache_dir=str(tmp_path / "cache"), scorers=False, progress=False,
                           settings={"long_side": 96}, retry_failed=retry_failed,
                           judge=judge_settings(backend="http", url=judge_url, model="Qwen/Qwen2.5-VL-7B-Instruct"))

    _Judge.asked = []
    first = run(False)
    assert first.summary["counts"]["failed"] == 1 and len(_Judge.asked) == 10
    for retry_failed in (False, True):
        _Judge.asked = []
        again = run(retry_failed)
        assert _Judge.asked == ["s2sc"]  # exactly the failed answer; the greedy judge still cannot say
        assert again.summary["counts"]["failed"] == 1 and again.summary["judge"]["work"]["questions"] == 10 + (2 if retry_failed else 1)
