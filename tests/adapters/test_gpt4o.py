"""GPT-4o adapter against a local HTTP server: the multipart request, an image, a refusal and a timeout.

The API key must reach the server in the Authorization header and appear nowhere else: not in the record,
the row written by ``generate``, the failure reason, or the logs.
"""
from __future__ import annotations

import base64
import email.parser
import email.policy
import io
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from multiid_bench.adapters import get_adapter
from multiid_bench.errors import ConfigError
from tests.adapters.conftest import COLOURS, colour_of

KEY = "sk-test-SECRET-0123456789"


def _parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str | None, bytes]]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    parts = []
    for part in msg.iter_parts():
        parts.append((part.get_param("name", header="content-disposition"), part.get_filename(),
                      part.get_payload(decode=True)))
    return parts


class _Handler(BaseHTTPRequestHandler):
    mode = "ok"
    seen: list[dict] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        parts = _parse_multipart(self.headers["Content-Type"], body)
        self.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "parts": parts})
        if self.mode == "slow":
            time.sleep(3)
        if self.mode == "refuse":
            payload = json.dumps({"error": {"code": "moderation_blocked", "type": "image_generation_user_error",
                                            "message": "Your request was rejected by the safety system."}}).encode()
            self.send_response(400)
        else:
            buf = io.BytesIO()
            Image.new("RGB", (1024, 1024), (12, 34, 56)).save(buf, format="PNG")
            payload = json.dumps({"created": 1700000000, "data": [{"b64_json": base64.b64encode(buf.getvalue()).decode()}],
                                  "usage": {"total_tokens": 42}}).encode()
            self.send_response(200)
            self.send_header("x-request-id", "req_local_1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server():
    _Handler.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, _Handler
    httpd.shutdown()
    httpd.server_close()


def _adapter(httpd, monkeypatch, **settings):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    adapter = get_adapter("gpt4o", base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1", max_retries=0,
                          **settings)
    adapter.load("cpu")
    return adapter


def _no_key_anywhere(result, caplog):
    assert KEY not in json.dumps(result.to_row("images/x.png"))
    assert KEY not in (result.reason or "")
    assert KEY not in caplog.text
    assert KEY not in repr(result.record) and KEY not in repr(result)


def test_multipart_request_and_image(server, monkeypatch, make_case, caplog):
    httpd, handler = server
    handler.mode = "ok"
    caplog.set_level(logging.DEBUG)
    case = make_case(2)
    result = _adapter(httpd, monkeypatch).generate(case, 99)
    assert result.status == "ok" and result.image.size == (1024, 1024) and colour_of(result.image) == (12, 34, 56)
    (req,) = handler.seen
    assert req["path"] == "/v1/images/edits" and req["auth"] == f"Bearer {KEY}"
    fields = {n: v.decode() for n, f, v in req["parts"] if f is None}
    # paper preset = the API's defaults (paper App. F.1): quality auto, input_fidelity not sent
    assert fields == {"model": "gpt-image-1", "prompt": result.record.prompt, "size": "1024x1024", "quality": "auto",
                      "n": "1"}
    files = [(n, f, v) for n, f, v in req["parts"] if f is not None]
    assert [n for n, _, _ in files] == ["image[]", "image[]"]  # several references: repeated image[] parts
    assert [colour_of(Image.open(io.BytesIO(v))) for _, _, v in files] == COLOURS[:2]  # case order
    assert result.record.extra["api"]["request_id"] == "req_local_1"
    assert result.record.extra["api"]["usage"] == {"total_tokens": 42}
    assert result.record.seed == 99 and result.record.seed_applied is False
    _no_key_anywhere(result, caplog)


def test_single_reference_uses_image_field(server, monkeypatch, make_case):
    httpd, handler = server
    handler.mode = "ok"
    _adapter(httpd, monkeypatch, quality="medium").generate(make_case(1, case_id="p1_g"), 1)
    files = [(n, f) for n, f, _ in handler.seen[0]["parts"] if f is not None]
    fields = {n: v.decode() for n, f, v in handler.seen[0]["parts"] if f is None}
    assert [n for n, _ in files] == ["image"] and fields["quality"] == "medium"


def test_refusal_is_a_failed_case_and_not_retried(server, monkeypatch, make_case, caplog):
    httpd, handler = server
    handler.mode = "refuse"
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    adapter = get_adapter("gpt4o", base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1", max_retries=3)
    result = adapter.generate(make_case(2), 5)
    assert result.status == "failed" and result.image is None
    assert "HTTP 400" in result.reason and "moderation_blocked" in result.reason and "safety system" in result.reason
    assert len(handler.seen) == 1  # a refusal is billed: never retried
    _no_key_anywhere(result, caplog)


def test_timeout_is_a_failed_case(server, monkeypatch, make_case, caplog):
    httpd, handler = server
    handler.mode = "slow"
    caplog.set_level(logging.DEBUG)
    t0 = time.perf_counter()
    result = _adapter(httpd, monkeypatch, timeout_s=0.5).generate(make_case(1, case_id="p1_t"), 5)
    assert time.perf_counter() - t0 < 2.5
    assert result.status == "failed" and "TimeoutError" in result.reason and "within 0.5 s" in result.reason
    _no_key_anywhere(result, caplog)


def test_missing_key_is_a_config_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        get_adapter("gpt4o").load("cpu")


def test_client_repr_hides_key():
    from multiid_bench.adapters.gpt4o import ImagesEditClient

    client = ImagesEditClient("http://127.0.0.1:1/v1", KEY)
    assert KEY not in repr(client) and KEY not in str(vars(client).get("base_url"))
