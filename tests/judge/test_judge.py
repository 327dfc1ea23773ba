"""vlm-judge: prompts equal OmniContext's, parsing, and exact PF/SC/Overall from a scripted judge server.

The fake judge is a real HTTP server on 127.0.0.1 speaking the OpenAI chat-completions protocol; it answers
from a script keyed by (instruction, prompt kind), so every aggregate below is computed by hand.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.local_server import serving
from PIL import Image

from multiid_bench.errors import EXIT_JUDGE_UNREACHABLE, JudgeUnreachableError
from multiid_bench.judge.scorer import JudgeItem, VlmJudge
from multiid_bench.judge.backends import HttpJudgeBackend, prepare_judge_images
from multiid_bench.judge.parse import parse_score
from multiid_bench.judge.prompts import PROMPT_SETS
from multiid_bench.judge.stats import aggregate_judge

# sha256 of OmniContext's PromptGenerator()(INSTRUCTION, kind, with_scene) at VectorSpaceLab/OmniGen2 0f72fa9,
# computed once by running the upstream file.
INSTRUCTION = "Put the man in image 1 on a beach."
UPSTREAM_SHA256 = {
    ("prompt_following", False): "9635f7e238cd752c6aa6d8b1bb719e94b986068da8b082b5a31ea4bcbce8b702",
    ("prompt_following", True): "6984e24c5e207dde35f928af45f0245b26b6d613aa6f82057955bb25c2b007ec",
    ("subject_consistency", False): "bf56fc46dd5b163b3574a01bb3f69669d98d0fd666e08dc8022d271c6cd14d53",
    ("subject_consistency", True): "35fe85cb9e1b39f1ced3c8ddcae9ef73bef6e467dff7d7f21a7b482ddda2859e",
}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_prompts_equal_omnicontext_byte_for_byte() -> None:
    intended = PROMPT_SETS["omnicontext-scene-pf"]
    for (kind, scene), digest in UPSTREAM_SHA256.items():
        assert _sha(intended.build(kind, INSTRUCTION, with_scene=scene)) == digest
    official = PROMPT_SETS["omnicontext"]  # the evaluation script never passes with_scene to PF
    assert _sha(official.build("prompt_following", INSTRUCTION, with_scene=True)) == UPSTREAM_SHA256[("prompt_following", False)]
    assert _sha(official.build("subject_consistency", INSTRUCTION, with_scene=True)) == UPSTREAM_SHA256[("subject_consistency", True)]


def test_face_identity_variant_replaces_sc_only() -> None:
    face, omni = PROMPT_SETS["face-identity"], PROMPT_SETS["omnicontext"]
    sc = face.build("subject_consistency", INSTRUCTION, with_scene=False)
    assert "Focus strictly on facial identity similarity" in sc and sc.endswith(f"Editing instruction: {INSTRUCTION}\n")
    assert sc.startswith(omni.build("subject_consistency", INSTRUCTION, with_scene=False)[:200])  # same JSON header
    assert face.build("prompt_following", "x", with_scene=True) == omni.build("prompt_following", "x", with_scene=True)
    assert len({p.version for p in PROMPT_SETS.values()}) == 3


@pytest.mark.parametrize("text, score, source", [
    ('{"score": 7, "reasoning": "ok"}', 7.0, "json"),
    ('```json\n{\n  "score": 3,\n  "reasoning": "two\\ndiffs"\n}\n```', 3.0, "json"),
    ("{score: 9, reasoning: 'fine'}", 9.0, "json-repaired"),
    ('{"score": [4], "reasoning": null}', 4.0, "json"),
    ("10", 10.0, "number"),
    ("Score: 6.5 because the pose differs", 6.5, "text"),
    ("I would rate this 8/10.", 8.0, "text"),
    ("Score: 7. Overall 7 out of 10.", 7.0, "text"),
    ("Score: 7 but maybe 3/10", None, "none"),
    ('{"score": 11}', None, "none"),
    ('{"score": "high"}', None, "none"),
    ("11", None, "none"),
    ("", None, "none"),
    ("The image shows a man.", None, "none"),
])
def test_parse_score(text: str, score: float | None, source: str) -> None:
    p = parse_score(text)
    assert (p.score, p.source) == (score, source)
    assert (p.error is None) == (score is not None)


# ------------------------------------------------------------------------------------- fake server

SCRIPT: dict[tuple[str, str], Any] = {
    # single_character: per-case overall sqrt(8*2)=4, sqrt(9*4)=6
    ("c1", "pf"): '{"score": 8, "reasoning": "a"}', ("c1", "sc"): '{"score": 2, "reasoning": "b"}',
    ("c2", "pf"): '{"score": 9, "reasoning": "a"}', ("c2", "sc"): "Score: 4",
    # scene_object: sqrt(4*9)=6; c4 SC never parses -> failed; sqrt(1*1)=1
    ("c3", "pf"): '{"score": 4}', ("c3", "sc"): '{"score": 9}',
    ("c4", "pf"): '{"score": 10}', ("c4", "sc"): "I cannot judge identities.",
    ("c5", "pf"): "1", ("c5", "sc"): '{"score": 1}',
}


class _Judge(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]] = []
    fail_once: set[str] = set()

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        content = body["messages"][0]["content"]
        text = content[0]["text"]
        case = text.rsplit("Editing instruction: ", 1)[1].split()[0]
        kind = "pf" if "fulfills the editing instruction" in text else "sc"
        type(self).calls.append({"case": case, "kind": kind, "auth": self.headers.get("Authorization"),
                                 "n_images": len(content) - 1, "body": body})
        if (case, kind) in type(self).fail_once:
            type(self).fail_once.discard((case, kind))
            self.send_response(503)
            self.end_headers()
            return
        reply = {"choices": [{"message": {"role": "assistant", "content": SCRIPT[(case, kind)]}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def server() -> Iterator[str]:
    _Judge.calls = []
    _Judge.fail_once = set()
    with serving(_Judge, "/v1") as url:
        yield url


def _img(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (40, 36)) -> Path:
    Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture()
def items(tmp_path: Path) -> list[JudgeItem]:
    out = []
    spec = [("c1", "single_character", 1), ("c2", "single_character", 1), ("c3", "scene_object", 2),
            ("c4", "scene_object", 2), ("c5", "scene_object", 2)]
    for i, (cid, tt, n) in enumerate(spec):
        inputs = tuple(_img(tmp_path / f"{cid}_in{k}.png", (10 * i, 20 * k, 5)) for k in range(n))
        out.append(JudgeItem(cid, tt, f"{cid} does something.", inputs, _img(tmp_path / f"{cid}_out.png", (i, 1, 2))))
    out.append(JudgeItem("c6", "scene_object", "c6 never generated", out[0].inputs, None))
    return out


def test_fake_judge_gives_hand_computed_aggregates(server: str, items: list[JudgeItem], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("MY_JUDGE_KEY", "sk-secret-123")
    backend = HttpJudgeBackend(server, "Qwen/Qwen2.5-VL-7B-Instruct", revision="cc59489", api_key_env="MY_JUDGE_KEY",
                               backoff_s=0.0, workers=3)
    judge = VlmJudge(backend, cache_root=tmp_path / "cache")
    _Judge.fail_once = {("c3", "pf")}  # one 503: retried by the transport, invisible in the result
    with caplog.at_level(logging.DEBUG):
        results = judge.judge(items)
    by_id = {r.case_id: r for r in results}
    assert [r.status for r in results] == ["ok", "ok", "ok", "failed", "ok", "missing"]
    assert (by_id["c1"].prompt_following, by_id["c1"].subject_consistency, by_id["c1"].overall) == (8.0, 2.0, 4.0)
    assert by_id["c2"].overall == 6.0 and by_id["c3"].overall == 6.0 and by_id["c5"].overall == 1.0
    bad = by_id["c4"]
    assert bad.prompt_following == 10.0 and bad.subject_consistency is None and bad.overall is None
    assert bad.answers["subject_consistency"]["raw"] == "I cannot judge identities."
    assert "subject_consistency" in bad.reason and "1 attempt" in bad.reason  # greedy: asked once

    agg = aggregate_judge([r.score() for r in results], subsets={"paper": ["single_character"]})
    single, scene = agg["task_types"]["single_character"], agg["task_types"]["scene_object"]
    assert (single["prompt_following"], single["subject_consistency"], single["overall"]) == (8.5, 3.0, 5.0)
    assert single["overall"] != math.sqrt(8.5 * 3.0)  # per-sample geometric mean, then averaged
    assert (scene["prompt_following"], scene["subject_consistency"], scene["overall"]) == (2.5, 5.0, 3.5)
    assert (scene["n"], scene["failed"], scene["missing"]) == (2, 1, 1)
    assert (agg["average"]["prompt_following"], agg["average"]["subject_consistency"], agg["average"]["overall"]) == (5.5, 4.0, 4.25)
    assert agg["subsets"]["paper"]["overall"] == 5.0 and agg["subsets"]["paper"]["n"] == 2

    # what reached the server: text first, then inputs, then the output; greedy; the key only in the header
    calls = _Judge.calls
    assert len(calls) == 11  # 5 cases x 2 prompts + one 503 retry; nothing for the missing image
    assert {c["auth"] for c in calls} == {"Bearer sk-secret-123"}
    c3 = [c for c in calls if c["case"] == "c3"]
    assert all(c["n_images"] == 3 and c["body"]["temperature"] == 0.0 and c["body"]["max_tokens"] == 1400 for c in c3)
    sent = [base64.b64decode(p["image_url"]["url"].split(",", 1)[1]) for p in c3[-1]["body"]["messages"][0]["content"][1:]]
    assert tuple(sent) == prepare_judge_images(items[2].inputs, items[2].output)
    assert "sk-secret-123" not in caplog.text + repr(backend) + json.dumps(judge.card)

    # re-scoring the same images is free: every parsed answer comes from the cache
    _Judge.calls = []
    again = VlmJudge(HttpJudgeBackend(server, "Qwen/Qwen2.5-VL-7B-Instruct", revision="cc59489", api_key_env="MY_JUDGE_KEY"),
                     cache_root=tmp_path / "cache").judge(items)
    assert [c["case"] + c["kind"] for c in _Judge.calls] == ["c4sc"]  # only the unparsed answer is asked again
    assert [(r.status, r.overall) for r in again] == [(r.status, r.overall) for r in results]
    # another judge revision or prompt variant does not hit that cache
    _Judge.calls = []
    VlmJudge(HttpJudgeBackend(server, "Qwen/Qwen2.5-VL-7B-Instruct", revision="other"),
             cache_root=tmp_path / "cache").judge(items[:1])
    VlmJudge(HttpJudgeBackend(server, "Qwen/Qwen2.5-VL-7B-Instruct", revision="cc59489"), prompts="face-identity",
             cache_root=tmp_path / "cache").judge(items[:1])
    assert sorted(c["kind"] for c in _Judge.calls) == ["pf", "pf", "sc", "sc"]  # concurrent: order varies


def test_sampling_judge_retries_unparseable_answers_a_bounded_number_of_times(server: str, items: list[JudgeItem]) -> None:
    backend = HttpJudgeBackend(server, "gpt-4.1", temperature=1.0, backoff_s=0.0, workers=1)
    (res,) = VlmJudge(backend, max_attempts=3).judge([items[3]])
    assert res.status == "failed" and res.answers["subject_consistency"]["attempts"] == 3
    assert [c["kind"] for c in _Judge.calls].count("sc") == 3 and [c["kind"] for c in _Judge.calls].count("pf") == 1


def test_refused_request_is_a_failure_not_a_zero(server: str, items: list[JudgeItem]) -> None:
    backend = HttpJudgeBackend(server.replace("/v1", "/nowhere"), "m", backoff_s=0.0, max_retries=1)
    _Judge.fail_once = {("c1", "pf"), ("c1", "sc")}
    backend.url = server + "/chat/completions"
    (res,) = VlmJudge(backend).judge([items[0]])
    assert res.status == "ok"  # a 503 is retried
    # a judge that answers nothing at all stops the run (exit 7) instead of failing every case
    dead = HttpJudgeBackend("http://127.0.0.1:9/v1", "m", backoff_s=0.0, max_retries=1, timeout_s=2)
    with pytest.raises(JudgeUnreachableError, match="cannot reach .*resume") as err:
        VlmJudge(dead, max_attempts=2).judge([items[0]])
    assert err.value.exit_code == EXIT_JUDGE_UNREACHABLE == 7


def test_input_images_resized_as_omnicontext(tmp_path: Path) -> None:
    big = _img(tmp_path / "big.png", (1, 2, 3), (1500, 1000))
    small = _img(tmp_path / "small.png", (1, 2, 3), (100, 70))
    out = _img(tmp_path / "out.png", (1, 2, 3), (100, 70))
    import io

    sizes = [Image.open(io.BytesIO(b)).size for b in prepare_judge_images([big, small], out)]
    r = math.sqrt(1024 * 1024 / (1500 * 1000))
    assert sizes == [(int(1500 * r) // 16 * 16, int(1000 * r) // 16 * 16), (96, 64), (100, 70)]


def test_ls_metrics_lists_the_judge_metrics() -> None:
    from click.testing import CliRunner

    from multiid_bench.cli.main import cli
    from multiid_bench.metrics.cards import get_card

    res = CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["ls", "metrics", "--json"], catch_exceptions=False)
    cards = json.loads(res.output)
    for mid in ("prompt_following", "subject_consistency", "overall"):
        assert cards[mid]["range"] == [0.0, 10.0] and cards[mid]["higher_is_better"] is True
        assert "judge" in cards[mid]["scale"] and "prompt version" in cards[mid]["scale"]
        assert get_card(mid).read_by == ("Table 1b",)


def test_cli_documents_omnicontext_and_judge_options() -> None:
    from click.testing import CliRunner

    from multiid_bench.cli.evaluate import _judge_settings
    from multiid_bench.cli.main import cli

    for cmd in ("evaluate", "score"):
        out = CliRunner(env={"COLUMNS": "200"}).invoke(cli, [cmd, "--help"], catch_exceptions=False).output
        for needle in ("omnicontext", "--judge ", "--judge-prompts", "face-identity", "--judge-url", "--judge-model ",
                       "--judge-weights", "--judge-api-key-env", "preset 'paper'"):
            assert needle in out, (cmd, needle)

    def opts(**kw: object) -> dict[str, object]:
        base = {"bench": "omnicontext", "judge_backend": None, "judge_prompts": "face-identity",
                "judge_weights": "qwen2.5-vl-7b-instruct", "judge_model_dir": None, "judge_url": None,
                "judge_model": None, "judge_revision": None, "judge_api_key_env": "OPENAI_API_KEY",
                "judge_batch_size": 4, "judge_max_attempts": 3}
        return {**base, **kw}

    o = opts()
    s = _judge_settings(o)
    assert s["backend"] == "transformers" and s["prompts"] == "face-identity"  # OmniContext gets a judge by default
    assert o == {"bench": "omnicontext"}  # judge options are consumed, the rest goes to the API
    assert _judge_settings(opts(bench="demo")) is None
    assert _judge_settings(opts(judge_backend="none")) is None
    http = _judge_settings(opts(judge_backend="http", judge_url="http://127.0.0.1:1/v1", judge_model="m"))
    assert (http["backend"], http["url"], http["model"]) == ("http", "http://127.0.0.1:1/v1", "m")
    assert set(PROMPT_SETS) == {"omnicontext", "omnicontext-scene-pf", "face-identity"}  # the CLI's choices
