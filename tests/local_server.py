"""A scripted HTTP server on 127.0.0.1 for the tests that talk to a judge or an API (one helper, every test).

Binds port 0 (the kernel picks a free one), serves on a daemon thread and always shuts down, so a failing
test never leaves a server behind.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], path: str = "") -> Iterator[str]:
    """``with serving(Handler, "/v1") as url:`` -> ``http://127.0.0.1:<port>/v1`` while the block runs."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    finally:
        httpd.shutdown()
        httpd.server_close()
