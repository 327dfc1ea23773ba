"""Running upstream code in its own environment: a persistent worker process spoken to in JSON lines.

Why: the baselines pin incompatible stacks (diffusers 0.30-0.33 vs >= 0.35, transformers 4.4x vs 5.x,
TensorFlow for ID-Patch). Each family gets its own virtualenv; the adapter (in the toolkit's environment)
builds the request, and a small script under ``adapters/workers/`` (stdlib + the upstream code only) runs it.

Protocol (one JSON object per line; the worker's stdout carries nothing else, upstream prints go to stderr):

* client -> worker ``{"op": "load", "settings": {...}, "device": "cuda"}``; reply ``{"ok": true}``
* client -> worker ``{"op": "generate", "request": {...}, "out": "/tmp/.../out.png"}``; reply
  ``{"ok": true, "info": {...}}`` once the PNG is written
* errors reply ``{"ok": false, "kind": "missing_dependency"|"missing_weights"|"error", "error": "..."}``
* client -> worker ``{"op": "exit"}``

Images in a request are written as PNG files and passed by path. A reply that does not arrive within the
timeout kills the worker (it is restarted for the next case) and fails only that case.

Failures while loading stop the run with exit code 3 and a message, never a traceback: a missing package
(:class:`MissingDependencyError`), a missing checkpoint (:class:`MissingWeightsError`), anything else
(:class:`WorkerLoadError`: a CUDA/driver problem, an upstream bug, a worker that died). The message carries
the last lines of the worker log. Each request's files are removed once its image is read, and the whole
temporary folder (log included) when the client is closed or garbage-collected, or at interpreter exit.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from multiid_bench.adapters.environments import WORKERS_DIR, env_record
from multiid_bench.adapters.pipeline import PipelineAdapter, Request
from multiid_bench.errors import EXIT_MISSING, ConfigError, MBenchError, MissingDependencyError, MissingWeightsError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["WORKER_DEFAULTS", "WORKERS_DIR", "WorkerAdapter", "WorkerClient", "WorkerError", "WorkerLoadError"]

log = logging.getLogger(__name__)

WORKER_DEFAULTS: dict[str, Any] = {
    "python": None,  # interpreter of the family's environment; default $MBENCH_<NAME>_PYTHON, else this one
    "repo": None,  # checkout of the upstream repository (added to PYTHONPATH); default $MBENCH_<NAME>_REPO
    "timeout_s": 1800.0,  # per generated image
    "load_timeout_s": 3600.0,  # model loading (first use may also download weights)
}


class WorkerError(RuntimeError):
    """The worker reported an error for one request (the case fails; the run continues)."""


class WorkerLoadError(MBenchError):
    """The worker could not load the model for a reason other than a missing package or checkpoint.

    The environment is unusable (wrong torch/CUDA build, an upstream incompatibility, a crash at import):
    the whole run stops with exit code 3, like other missing-environment problems, and the message names
    the worker script, the interpreter and the log's last lines.
    """

    exit_code = EXIT_MISSING
    stops_run = True  # raised again when a restarted worker fails to load: the run stops, not one case


class WorkerClient:
    """A persistent worker process; calling it sends one generate request and returns the PIL image."""

    def __init__(self, python: str, script: Path, settings: dict[str, Any], device: str, *,
                 repo: str | None = None, timeout_s: float = 1800.0, load_timeout_s: float = 3600.0,
                 name: str = "worker") -> None:
        self.python, self.script, self.settings, self.device = python, Path(script), settings, device
        self.repo, self.timeout_s, self.load_timeout_s, self.name = repo, timeout_s, load_timeout_s, name
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._tmp = Path(tempfile.mkdtemp(prefix=f"mbench-{name}-"))
        self.log_path = self._tmp / "worker.log"
        self._count = 0
        # The folder goes when this client is closed for good, collected, or at interpreter exit.
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self._tmp), True)
        atexit.register(_close_at_exit, weakref.ref(self))  # a weak reference: no client is kept alive by it

    # ---- process management --------------------------------------------------------------------
    def start(self) -> None:
        if not self._cleanup.alive:  # started again after a failed load removed the folder
            self._tmp.mkdir(parents=True, exist_ok=True)
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(self._tmp), True)
        env = dict(os.environ)
        paths = [str(WORKERS_DIR)] + ([self.repo] if self.repo else [])
        env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["PYTHONUNBUFFERED"] = "1"
        cwd = self.repo if self.repo and Path(self.repo).is_dir() else None
        self._log = open(self.log_path, "a", encoding="utf-8")
        self._proc = subprocess.Popen(
            [self.python, "-u", str(self.script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log, text=True, env=env, cwd=cwd,
        )
        self._lines = queue.Queue()
        threading.Thread(target=self._pump, args=(self._proc, self._lines), daemon=True).start()
        try:
            reply = self._ask({"op": "load", "settings": self.settings, "device": self.device}, self.load_timeout_s)
        except (WorkerError, TimeoutError) as e:  # died or hung while loading: the environment is broken
            reply = {"ok": False, "kind": "error", "error": str(e).split("; last log lines", 1)[0]}
        if not reply.get("ok"):
            kind, msg = reply.get("kind"), reply.get("error", "unknown error")
            self.close()
            where = f" (worker {self.script.name}, python {self.python})"
            tail = _without_traceback(self._tail(40))[-10:]
            if os.environ.get("MBENCH_DEBUG") == "1":
                tail.append(f"(MBENCH_DEBUG=1: full worker log kept at {self.log_path})")
            else:
                self._cleanup()  # the log's message lines go into the error; nothing else there is useful
            log_lines = ("\nlast lines of the worker log:\n" + "\n".join(tail)) if tail else ""
            if kind == "missing_dependency":
                raise MissingDependencyError(
                    f"adapter {self.name!r}: {msg}{where}. Build its environment with 'mbench setup-env "
                    f"{self.name}' (docs/adapters.md section 5).{log_lines}")
            if kind == "missing_weights":
                raise MissingWeightsError(f"adapter {self.name!r}: {msg}{where}{log_lines}")
            raise WorkerLoadError(
                f"adapter {self.name!r}: the worker failed to load the model: {msg}{where}. Check the "
                f"environment (torch/CUDA build, upstream checkout at {self.name}'s pinned revision; "
                f"'mbench setup-env {self.name}' rebuilds it).{log_lines}")

    @staticmethod
    def _pump(proc: "subprocess.Popen[str]", lines: "queue.Queue[str | None]") -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def _ask(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise WorkerError("worker is not running")
        try:
            proc.stdin.write(json.dumps(message) + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise WorkerError(f"worker exited ({e}); last log lines:\n{self._tail()}") from None
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                self.close(graceful=False)  # it is busy with the stuck request: no point asking it to exit
                raise TimeoutError(f"worker gave no answer within {timeout:.0f} s; it was stopped") from None
            if line is None:
                code = proc.wait()
                self._proc = None
                raise WorkerError(f"worker exited with code {code}; last log lines:\n{self._tail()}")
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)  # type: ignore[no-any-return]

    def _tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def close(self, graceful: bool = True) -> None:
        """Stop the worker: ask it to exit (``graceful``), else or on failure kill it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            stopped = False
            if graceful and proc.stdin:
                try:
                    proc.stdin.write(json.dumps({"op": "exit"}) + "\n")
                    proc.stdin.flush()
                    proc.wait(timeout=10)
                    stopped = True
                except (OSError, ValueError, subprocess.TimeoutExpired):
                    stopped = False
            if not stopped:
                proc.kill()
                proc.wait()
        log_file = getattr(self, "_log", None)
        if log_file is not None and not log_file.closed:
            log_file.close()

    def shutdown(self) -> None:
        """Stop the worker and delete its temporary folder (requests, outputs, log)."""
        self.close()
        self._cleanup()

    # ---- requests -------------------------------------------------------------------------------
    def __call__(self, **request: Any) -> "tuple[Image.Image, dict[str, Any]]":
        from PIL import Image

        if self._proc is None or self._proc.poll() is not None:
            self.start()
        self._count += 1
        folder = self._tmp / f"req{self._count:06d}"
        folder.mkdir()
        payload = _serialise(request, folder, "in")
        out = folder / "out.png"
        try:
            reply = self._ask({"op": "generate", "request": payload, "out": str(out)}, self.timeout_s)
            if not reply.get("ok"):
                raise WorkerError(str(reply.get("error", "unknown worker error")))
            with Image.open(out) as im:
                image = im.convert("RGB")
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # inputs and output are in memory now (or failed)
        return image, {"worker": reply.get("info", {})}


def _without_traceback(text: str) -> list[str]:
    """Log lines minus Python traceback frames (the message must stay a message; MBENCH_DEBUG keeps the log)."""
    return [line for line in text.splitlines()
            if line.strip() and not line.startswith(("Traceback (most recent call last)", "  ", "    "))
            and set(line.strip()) - set("^~")]


def _close_at_exit(ref: "weakref.ref[WorkerClient]") -> None:
    client = ref()
    if client is not None:
        client.shutdown()


def _serialise(value: Any, folder: Path, stem: str) -> Any:
    """PIL images -> PNG paths (recursively through lists and dicts); everything else unchanged."""
    from PIL import Image

    if isinstance(value, Image.Image):
        path = folder / f"{stem}.png"
        value.save(path)
        return {"__image__": str(path)}
    if isinstance(value, dict):
        return {k: _serialise(v, folder, f"{stem}_{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_serialise(v, folder, f"{stem}_{i}") for i, v in enumerate(value)]
    return value


class WorkerAdapter(PipelineAdapter):
    """Adapter whose pipeline is a :class:`WorkerClient` running ``workers/<worker_script>``."""

    worker_script: ClassVar[str] = ""

    def _env_key(self, what: str) -> str:
        return f"MBENCH_{self.name.upper().replace('-', '_')}_{what}"

    def worker_settings(self) -> dict[str, Any]:
        """Settings sent to the worker's ``load`` (everything except the process options)."""
        return {k: v for k, v in self.settings.items() if k not in WORKER_DEFAULTS}

    def environment(self) -> tuple[str, str | None, str]:
        """(interpreter, upstream checkout, where they came from): the ``python``/``repo`` settings, else
        ``$MBENCH_<NAME>_PYTHON``/``_REPO``, else the record ``mbench setup-env NAME`` wrote, else this
        interpreter (and no checkout)."""
        python, repo = self.settings.get("python"), self.settings.get("repo")
        if python or repo:
            origin = "settings"
        else:
            python, repo = os.environ.get(self._env_key("PYTHON")), os.environ.get(self._env_key("REPO"))
            origin = "environment variables"
        if not python and not repo:
            record = env_record(self.name)
            if record:
                python, repo, origin = record.get("python"), record.get("repo"), "mbench setup-env record"
        if not python:
            python, origin = sys.executable, origin if repo else "the current interpreter"
        return str(python), (str(repo) if repo else None), origin

    def close(self) -> None:
        """Stop the worker process and delete its temporary folder."""
        if isinstance(self.pipe, WorkerClient):
            self.pipe.shutdown()
            self.pipe = None

    def _load_pipeline(self, device: str) -> WorkerClient:
        python, repo, _origin = self.environment()
        if not Path(python).is_file():
            raise ConfigError(f"adapter {self.name!r}: python={python!r} does not exist; point it at the "
                              f"environment's interpreter (or set {self._env_key('PYTHON')}); see docs/adapters.md")
        if repo and not Path(repo).is_dir():
            raise ConfigError(f"adapter {self.name!r}: repo={repo!r} is not a directory; clone "
                              f"{self.capabilities.upstream_repo} at {self.capabilities.upstream_revision} there")
        client = WorkerClient(python, WORKERS_DIR / self.worker_script, self.worker_settings(), device, repo=repo,
                              timeout_s=float(self.settings["timeout_s"]),
                              load_timeout_s=float(self.settings["load_timeout_s"]), name=self.name)
        client.start()
        return client

    def run_request(self, request: Request, seed: int) -> Any:
        return self.pipe(**dict(request.call_kwargs), seed=int(seed))
