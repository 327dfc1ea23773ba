"""``mbench study serve``: the rating page (in the spirit of the paper's Fig. 20) and its small JSON API.

A rater opens ``/r/<token>``: the instructions first, then one trial per screen (the prompt, the
ground-truth photo, the reference crops and the K results in the rater's recorded random order, each with
a 1-5 star control per criterion). The page is plain HTML + JS served from this package (no build step).

Security model, kept small on purpose:
- every API and image URL carries the rater's token; the server looks up the rater by the token's sha256
  and only ever reads or writes that rater's rows, so no request can name another rater;
- images are served only from ``STUDY/media`` and only by names the database lists (a sha256 and an image
  suffix); anything else, ``../`` included, is refused;
- a submitted trial is validated completely (every result, every criterion, integer stars 1-5) before
  anything is written; an invalid one is answered 400 and writes nothing; a valid one is one transaction;
- answers never leave the server with a model name; pages carry a strict Content-Security-Policy and
  ``Referrer-Policy: no-referrer`` (the token is in the URL).

Starlette, uvicorn and Jinja2 are the optional extra ``multiid-bench[study]``, imported here only.
"""
from __future__ import annotations

import datetime as _dt
import ipaddress
import json
import re
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multiid_bench.errors import MissingDependencyError
from multiid_bench.study import db
from multiid_bench.study.criteria import CRITERION_IDS, STARS
from multiid_bench.study.invite import hash_token

if TYPE_CHECKING:
    import sqlite3

__all__ = ["MAX_BODY_BYTES", "StudyServer", "build_app", "is_loopback", "serve"]

MAX_BODY_BYTES = 64 * 1024
_MEDIA_NAME = re.compile(r"^[0-9a-f]{64}\.(png|jpg|jpeg|webp)$")
_HERE = Path(__file__).resolve().parent
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def _deps() -> None:
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(f"the study server needs {e.name}: pip install 'multiid-bench[study]'") from e


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1): reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Invalid(Exception):
    """A submitted trial that breaks a rule; answered 400 with this message, nothing written."""


def _validate(body: Any, slots: int) -> list[tuple[int, str, int]]:
    """``{"ratings": {"<slot>": {"<criterion>": stars}}}`` -> [(slot, criterion, stars)], or :class:`_Invalid`."""
    if not isinstance(body, dict) or not isinstance(body.get("ratings"), dict):
        raise _Invalid("body must be a JSON object with a 'ratings' object")
    ratings = body["ratings"]
    expected = {str(s) for s in range(slots)}
    if set(ratings) != expected:
        raise _Invalid(f"ratings must cover results {sorted(expected)} exactly; got {sorted(map(str, ratings))}")
    out = []
    for slot_text, per in ratings.items():
        if not isinstance(per, dict) or set(per) != set(CRITERION_IDS):
            got = sorted(per) if isinstance(per, dict) else type(per).__name__
            raise _Invalid(f"result {slot_text}: criteria must be exactly {list(CRITERION_IDS)}; got {got}")
        for crit, stars in per.items():
            if type(stars) is not int or stars not in STARS:
                raise _Invalid(f"result {slot_text}, {crit}: stars must be an integer 1-5; got {stars!r}")
            out.append((int(slot_text), crit, stars))
    return out


def build_app(study: str | Path) -> Any:
    """The Starlette application for the study folder ``study`` (one DB connection per request)."""
    _deps()
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles
    from starlette.templating import Jinja2Templates

    folder = Path(study).resolve()
    media_dir = (folder / db.MEDIA_DIR).resolve()
    db.connect(folder).close()  # fail now, with the message, if this is not a study
    templates = Jinja2Templates(directory=str(_HERE / "templates"))

    def _open() -> "sqlite3.Connection":
        return db.connect(folder)

    def _rater(con: "sqlite3.Connection", token: str) -> "sqlite3.Row":
        row = con.execute("SELECT id, name FROM raters WHERE token_sha256 = ?", (hash_token(token),)).fetchone()
        if row is None:
            raise HTTPException(404, "unknown invitation: ask the study's organiser for your link")
        return row

    def _trial(con: "sqlite3.Connection", n: int) -> "sqlite3.Row":
        row = con.execute("SELECT * FROM trials WHERE position = ?", (n - 1,)).fetchone()
        if row is None:
            raise HTTPException(404, f"no trial {n}")
        return row

    def _count(con: "sqlite3.Connection") -> int:
        return int(con.execute("SELECT COUNT(*) FROM trials").fetchone()[0])

    def page(request: Request) -> Response:
        token = request.path_params["token"]
        con = _open()
        try:
            rater = _rater(con, token)
            context = {"rater": rater["name"], "token": token, "n_trials": _count(con),
                       "overview": db.get_meta(con, "overview"), "criteria": db.get_meta(con, "criteria"),
                       "stars": list(STARS)}
        finally:
            con.close()
        return templates.TemplateResponse(request, "study.html", context)

    def state(request: Request) -> Response:
        con = _open()
        try:
            rater = _rater(con, request.path_params["token"])
            n_trials = _count(con)
            done = {r[0] for r in con.execute(
                "SELECT t.position FROM submissions s JOIN trials t ON t.id = s.trial_id WHERE s.rater_id = ?",
                (rater["id"],))}
            pending = [p for p in range(n_trials) if p not in done]
            return JSONResponse({"rater": rater["name"], "n_trials": n_trials, "done": len(done),
                                 "next": pending[0] + 1 if pending else None,
                                 "criteria": [c["id"] for c in db.get_meta(con, "criteria")]})
        finally:
            con.close()

    def trial(request: Request) -> Response:
        token, n = request.path_params["token"], request.path_params["n"]
        con = _open()
        try:
            rater = _rater(con, token)
            t = _trial(con, n)
            slots = con.execute("SELECT p.slot, p.run_id, r.media FROM presentations p JOIN results r ON "
                                "r.trial_id = p.trial_id AND r.run_id = p.run_id WHERE p.rater_id = ? AND "
                                "p.trial_id = ? ORDER BY p.slot", (rater["id"], t["id"])).fetchall()
            slot_of = {s["run_id"]: s["slot"] for s in slots}
            answers: dict[str, dict[str, int]] = {}
            for r in con.execute("SELECT run_id, criterion, stars FROM ratings WHERE rater_id = ? AND trial_id = ?",
                                 (rater["id"], t["id"])):
                answers.setdefault(str(slot_of[r["run_id"]]), {})[r["criterion"]] = r["stars"]
            media = f"/media/{token}/"
            return JSONResponse({
                "n": n, "n_trials": _count(con), "prompt": t["prompt"], "subset": t["subset"],
                "gt": media + t["gt_media"], "refs": [media + m for m in json.loads(t["ref_media"])],
                "results": [{"slot": s["slot"], "image": media + s["media"]} for s in slots],
                "answers": answers, "submitted": bool(answers),
            })
        finally:
            con.close()

    async def submit(request: Request) -> Response:
        too_big = JSONResponse({"error": f"body larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return too_big
        raw = b""
        async for chunk in request.stream():  # bounded read: never buffer more than the limit
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                return too_big
        try:
            body = json.loads(raw)
        except ValueError:
            return JSONResponse({"error": "body is not JSON"}, status_code=400)
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(_store, request.path_params["token"], request.path_params["n"], body)

    def _store(token: str, n: int, body: Any) -> Response:
        con = _open()
        try:
            rater = _rater(con, token)
            t = _trial(con, n)
            run_of = {r["slot"]: r["run_id"] for r in con.execute(
                "SELECT slot, run_id FROM presentations WHERE rater_id = ? AND trial_id = ?", (rater["id"], t["id"]))}
            try:
                rows = _validate(body, len(run_of))
            except _Invalid as e:
                return JSONResponse({"error": str(e)}, status_code=400)
            elapsed = body.get("elapsed_ms")
            elapsed = int(elapsed) if type(elapsed) is int and 0 <= elapsed < 10**9 else None
            now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute("DELETE FROM ratings WHERE rater_id = ? AND trial_id = ?", (rater["id"], t["id"]))
                con.executemany("INSERT INTO ratings (rater_id, trial_id, run_id, criterion, stars) VALUES "
                                "(?, ?, ?, ?, ?)", [(rater["id"], t["id"], run_of[s], c, v) for s, c, v in rows])
                con.execute("INSERT OR REPLACE INTO submissions (rater_id, trial_id, submitted, elapsed_ms) "
                            "VALUES (?, ?, ?, ?)", (rater["id"], t["id"], now, elapsed))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return JSONResponse({"saved": n, "ratings": len(rows)})
        finally:
            con.close()

    def media(request: Request) -> Response:
        name = request.path_params["name"]
        con = _open()
        try:
            _rater(con, request.path_params["token"])
            if not _MEDIA_NAME.fullmatch(name):
                return PlainTextResponse("not a study image name", status_code=400)
            if con.execute("SELECT 1 FROM media WHERE name = ?", (name,)).fetchone() is None:
                return PlainTextResponse("no such study image", status_code=404)
        finally:
            con.close()
        path = (media_dir / name).resolve()
        if path.parent != media_dir or not path.is_file():
            return PlainTextResponse("no such study image", status_code=404)
        return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

    def root(request: Request) -> Response:
        return PlainTextResponse("MultiID-Bench user study: open the invitation link you were given.", status_code=404)

    async def not_found(request: Request, exc: Exception) -> Response:
        code = getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", "error")
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": detail}, status_code=code)
        return PlainTextResponse(str(detail), status_code=code)

    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        for key, value in _HEADERS.items():
            response.headers.setdefault(key, value)
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    return Starlette(routes=[
        Route("/", root),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/r/{token}", page),
        Route("/api/{token}/state", state),
        Route("/api/{token}/trial/{n:int}", trial, methods=["GET"]),
        Route("/api/{token}/trial/{n:int}", submit, methods=["POST"]),
        Route("/media/{token}/{name}", media),
        Mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static"),
    ], exception_handlers={HTTPException: not_found},
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=security_headers)])


class StudyServer:
    """The study served by uvicorn in a background thread (tests, the load benchmark); ``with`` stops it.

    ``port=0`` takes a free port; :attr:`url` says which.
    """

    def __init__(self, study: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
        _deps()
        import uvicorn

        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.host, self.port = host, self._sock.getsockname()[1]
        config = uvicorn.Config(build_app(study), log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> "StudyServer":
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the study server did not start on {self.url} within {timeout_s} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)
        self._sock.close()

    def __enter__(self) -> "StudyServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(study: str | Path, host: str = "127.0.0.1", port: int = 8000, *, warn: Any = print) -> None:
    """Serve until Ctrl-C. A host that is not loopback is served, with a warning: raters' links then work
    from other machines, and so does every other request."""
    _deps()
    import uvicorn

    if not is_loopback(host):
        warn(f"warning: serving on {host}, reachable from other machines; tokens travel in clear over plain "
             "HTTP. Put it behind HTTPS (a reverse proxy) for a study outside this machine.")
    app = build_app(study)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
