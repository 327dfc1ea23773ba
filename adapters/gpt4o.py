"""GPT-4o native image generation through OpenAI's Images *edits* endpoint (``gpt-image-1``), over plain HTTP.

The request is ``POST {base_url}/images/edits`` as ``multipart/form-data``: ``model``, ``prompt``, ``size``,
``quality``, ``n=1``, ``input_fidelity`` and the references as PNG file parts (``image`` for one,
repeated ``image[]`` for several, in case order). The answer's ``data[0].b64_json`` is the image.

* The key comes from ``$OPENAI_API_KEY`` only; it is sent in the ``Authorization`` header and never logged,
  recorded or put in an error message (messages are scrubbed of it as a second line of defence).
* ``base_url`` (default ``$OPENAI_BASE_URL`` or ``https://api.openai.com/v1``) is configurable, which is how
  the tests talk to a local server.
* No seed exists: the record says ``seed_applied: false``; outputs are not reproducible, so keep the images.
* A refusal (moderation, 4xx) or a timeout fails that case with the API's reason and the run continues;
  refusals are never retried (a retry is billed); 429/5xx are retried ``max_retries`` times with back-off.
* ``model`` is pinned to ``gpt-image-1`` (the API's default has moved on); the model string and the date
  of the call are recorded.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

from multiid_bench.adapters._common import load_refs, people_prompt
from multiid_bench.adapters.base import Capabilities, presets_from
from multiid_bench.adapters.pipeline import PipelineAdapter, Request
from multiid_bench.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from multiid_bench.data.case import Case

__all__ = ["APIRefusal", "GPT4oAdapter", "ImagesEditClient"]

log = logging.getLogger(__name__)

SINGLE = "The person is the person in image 1; keep their face and identity exactly."
EACH = "Person {k} is the person in image {k}."
MULTI_TAIL = " Keep every person's face and identity exactly."
DEFAULT_BASE_URL = "https://api.openai.com/v1"


class APIRefusal(RuntimeError):
    """The API declined the request (moderation, verification, bad request): fail the case, do not retry."""


class ImagesEditClient:
    """Minimal client for ``/images/edits`` (stdlib only). ``api_key`` is held privately and never shown."""

    def __init__(self, base_url: str, api_key: str, *, timeout_s: float = 180.0, max_retries: int = 2,
                 backoff_s: float = 2.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.__key = api_key
        self.timeout_s, self.max_retries, self.backoff_s = timeout_s, max_retries, backoff_s

    def __repr__(self) -> str:  # never show the key
        return f"ImagesEditClient(base_url={self.base_url!r})"

    def _scrub(self, text: str) -> str:
        return text.replace(self.__key, "[redacted]") if self.__key else text

    def edit(self, *, images: Sequence["Image.Image"], prompt: str, model: str, size: str, quality: str,
             input_fidelity: str | None) -> tuple["Image.Image", dict[str, Any]]:
        """Send one edit request; returns (image, facts for the record)."""
        from PIL import Image

        fields: list[tuple[str, str]] = [("model", model), ("prompt", prompt), ("size", size), ("quality", quality),
                                         ("n", "1")]
        if input_fidelity:
            fields.append(("input_fidelity", input_fidelity))
        name = "image" if len(images) == 1 else "image[]"
        files = [(name, f"ref_{i + 1}.png", _png(im)) for i, im in enumerate(images)]
        body, boundary = _multipart(fields, files)
        url = f"{self.base_url}/images/edits"
        attempt = 0
        while True:
            attempt += 1
            req = urllib.request.Request(url, data=body, method="POST", headers={
                "Authorization": f"Bearer {self.__key}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Accept": "application/json",
            })
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    payload = json.loads(resp.read().decode("utf-8"))
                    request_id = resp.headers.get("x-request-id")
                break
            except urllib.error.HTTPError as e:
                detail = self._scrub(_error_text(e))
                if (e.code == 429 or e.code >= 500) and attempt <= self.max_retries:
                    log.warning("images/edits HTTP %s (attempt %d), retrying: %s", e.code, attempt, detail)
                    time.sleep(self.backoff_s * attempt)
                    continue
                raise APIRefusal(f"HTTP {e.code} from {url}: {detail}") from None
            except (socket.timeout, TimeoutError) as e:
                raise TimeoutError(f"no answer from {url} within {self.timeout_s:g} s") from e
            except urllib.error.URLError as e:
                if isinstance(e.reason, (socket.timeout, TimeoutError)):
                    raise TimeoutError(f"no answer from {url} within {self.timeout_s:g} s") from None
                raise ConnectionError(self._scrub(f"cannot reach {url}: {e.reason}")) from None
        try:
            b64 = payload["data"][0]["b64_json"]
        except (KeyError, IndexError, TypeError):
            raise APIRefusal(f"answer from {url} has no data[0].b64_json: {self._scrub(str(payload)[:300])}") from None
        image = Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")
        facts = {"created": payload.get("created"), "usage": payload.get("usage"), "request_id": request_id,
                 "attempts": attempt}
        return image, facts


def _png(image: "Image.Image") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _multipart(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = f"mbench-{uuid.uuid4().hex}"
    out = io.BytesIO()
    for name, value in fields:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(value.encode("utf-8") + b"\r\n")
    for name, filename, data in files:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  "Content-Type: image/png\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), boundary


def _error_text(e: urllib.error.HTTPError) -> str:
    try:
        body = e.read().decode("utf-8", errors="replace")
        err = json.loads(body).get("error", {})
        code = err.get("code") or err.get("type") or ""
        return f"{code}: {err.get('message', body)}".strip(": ")
    except (ValueError, AttributeError, OSError):
        return str(e.reason)


class GPT4oAdapter(PipelineAdapter):
    """OpenAI ``gpt-image-1`` edits with the references as input images (no seed, no GT inputs)."""

    name = "gpt4o"
    version = "1.0"
    capabilities = Capabilities(
        max_ids=4,  # the API takes up to 16 images; the bench has at most 4
        native_res=(1024, 1024),
        licence="OpenAI terms of use (API); needs organisation verification for gpt-image-1",
        support_status="best-effort",
        integration="api",
        seed_supported=False,
        prompt_template="{prompt} " + SINGLE + " | n>1: {prompt} " + EACH + " (k = 1..n)" + MULTI_TAIL,
        pip_extra=None,
        upstream_repo="OpenAI Images API (POST /v1/images/edits)",
        upstream_revision="gpt-image-1",
        weight_ids=(),
        defaults={
            "model": "gpt-image-1",
            "size": "1024x1024",
            "quality": "high",  # the presets set the API defaults (auto); -S quality=high for the best
            "input_fidelity": "high",  # presets: None (API default "low"); "high" raises face preservation
            "base_url": None,  # None = $OPENAI_BASE_URL or https://api.openai.com/v1
            "timeout_s": 180.0,
            "max_retries": 2,
        },
        description="GPT-4o image generation via OpenAI images/edits (gpt-image-1); no seed.",
        presets=presets_from(paper={}, upstream={
            "model": ("gpt-image-1", "paper: 'native GPT-4o-Image' via the API (the model string of that date)"),
            "quality": ("auto", "OpenAI images/edits default"),
            "input_fidelity": (None, "OpenAI images/edits default (not sent: 'low')"),
            "size": ("1024x1024", "ours: a fixed square (the API default 'auto' lets the model pick the aspect)"),
        }),
    )

    def _load_pipeline(self, device: str) -> ImagesEditClient:
        key = os.environ.get("OPENAI_API_KEY", "")
        if not key:
            raise ConfigError("adapter 'gpt4o' needs an OpenAI API key in the environment variable OPENAI_API_KEY")
        base = self.settings["base_url"] or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        return ImagesEditClient(base, key, timeout_s=float(self.settings["timeout_s"]),
                                max_retries=int(self.settings["max_retries"]))

    def build_request(self, case: "Case", seed: int) -> Request:
        size = str(self.settings["size"])
        try:
            w, h = (int(v) for v in size.split("x"))
        except ValueError:
            w, h = self.capabilities.native_res  # "auto": the API chooses
        order = tuple(range(len(case.refs)))
        refs = tuple(load_refs(case, order))
        prompt = people_prompt(case.prompt, len(refs), SINGLE, EACH) + (MULTI_TAIL if len(refs) > 1 else "")
        kwargs = {"images": list(refs), "prompt": prompt, "model": str(self.settings["model"]), "size": size,
                  "quality": str(self.settings["quality"]), "input_fidelity": self.settings["input_fidelity"]}
        return Request(prompt=prompt, size=(w, h), images=refs, reference_order=order, call_kwargs=kwargs,
                       extra={"model": kwargs["model"]})

    def run_request(self, request: Request, seed: int) -> "tuple[Image.Image, dict[str, Any]]":
        called = datetime.now(timezone.utc).isoformat(timespec="seconds")
        image, facts = self.pipe.edit(**request.call_kwargs)
        return image, {"api": {**facts, "called": called}}
