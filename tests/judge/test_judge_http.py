"""The HTTP judge's transport: Retry-After on 429, the server's own error text, an unreachable judge.

A scripted OpenAI-compatible server on 127.0.0.1 answers from a queue of (status, headers, body) replies.
"""
from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.local_server import serving
from PIL import Image

from multiid_bench.errors import JudgeUnreachableError
from multiid_bench.judge import HttpJudgeBackend, JudgeItem, JudgeRequest, VlmJudge

QUOTA = {"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                   "type": "insufficient_quota", "code": "insufficient_quota"}}


class _Scripted(BaseHTTPRequestHandler):
    replies: list[tuple[int, dict[str, str], Any]] = []
    seen: list[float] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append(time.monotonic())
        status, headers, body = type(self).replies.pop(0) if type(self).replies else (
            200, {}, {"choices": [{"message": {"content": '{"score": 7}'}}]})
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def server() -> Iterator[str]:
    _Scripted.replies, _Scripted.seen = [], []
    with serving(_Scripted, "/v1") as url:
        yield url


def test_429_waits_what_retry_after_asks(server: str) -> None:
    _Scripted.replies = [(429, {"Retry-After": "1"}, QUOTA)]
    backend = HttpJudgeBackend(server, "gpt-4.1", backoff_s=0.0, max_retries=2, workers=1)
    (answer,) = backend.ask([JudgeRequest("rate this", ())])
    assert answer.text == '{"score": 7}'
    assert len(_Scripted.seen) == 2 and _Scripted.seen[1] - _Scripted.seen[0] >= 0.95  # not the 0 s backoff


def test_retry_after_is_capped(server: str) -> None:
    _Scripted.replies = [(429, {"Retry-After": "3600"}, QUOTA)]
    backend = HttpJudgeBackend(server, "gpt-4.1", backoff_s=0.0, max_retries=1, workers=1, max_wait_s=0.2)
    t0 = time.monotonic()
    (answer,) = backend.ask([JudgeRequest("rate this", ())])
    assert answer.text is not None and time.monotonic() - t0 < 5


def test_the_servers_error_text_is_kept_in_the_reason(server: str) -> None:
    _Scripted.replies = [(429, {}, QUOTA)] * 2
    backend = HttpJudgeBackend(server, "gpt-4.1", backoff_s=0.0, max_retries=1, workers=1)
    (answer,) = backend.ask([JudgeRequest("rate this", ())])
    assert answer.text is None and not answer.unreachable
    assert "HTTP 429" in answer.error and "insufficient_quota" in answer.error and "exceeded your current quota" in answer.error
    _Scripted.replies = [(404, {}, {"error": {"message": "The model `gpt-9` does not exist", "code": "model_not_found"}})]
    (answer,) = backend.ask([JudgeRequest("rate this", ())])
    assert answer.error.endswith("The model `gpt-9` does not exist (model_not_found)")


def _item(tmp_path: Path) -> JudgeItem:
    Image.new("RGB", (32, 32), (1, 2, 3)).save(tmp_path / "in.png")
    Image.new("RGB", (32, 32), (3, 2, 1)).save(tmp_path / "out.png")
    return JudgeItem("single_character__a", "single_character", "a person", (tmp_path / "in.png",), tmp_path / "out.png")


def test_a_quota_error_is_a_failed_row_with_the_reason_not_a_stop(server: str, tmp_path: Path) -> None:
    _Scripted.replies = [(429, {}, QUOTA)] * 4
    backend = HttpJudgeBackend(server, "gpt-4.1", backoff_s=0.0, max_retries=1, workers=1)
    (res,) = VlmJudge(backend, max_attempts=1).judge([_item(tmp_path)])
    assert res.status == "failed" and "insufficient_quota" in res.reason


def test_an_unreachable_judge_stops_with_exit_7(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = HttpJudgeBackend(f"http://127.0.0.1:{port}/v1", "gpt-4.1", backoff_s=0.0, max_retries=1, timeout_s=2)
    judge = VlmJudge(backend)
    with pytest.raises(JudgeUnreachableError) as err:
        judge.judge([_item(tmp_path)])
    assert err.value.exit_code == 7 and f"127.0.0.1:{port}" in str(err.value) and "--out" in str(err.value)
