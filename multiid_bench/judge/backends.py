"""Where the judge's answers come from: a local transformers Qwen2.5-VL, or any OpenAI-compatible server.

Both backends see the same pixels, prepared as OmniContext's scoring script prepares them
(``omnicontext/test_omnicontext_score.py`` and ``openai_util.py`` of VectorSpaceLab/OmniGen2 @ 0f72fa9):
each *input* image larger than 1024*1024 pixels is scaled to that area (sides truncated to integers),
every input's sides are then floored to multiples of 16 (PIL ``resize`` with its default filter); the
generated image is used as it is; every image is EXIF-transposed, converted to RGB and JPEG-encoded with
PIL's default quality (75), which is what the API received. The message is the prompt text followed by the
input images and then the generated image.

Greedy decoding everywhere (``do_sample=False`` locally, ``temperature=0`` over HTTP by default; the
official GPT-4.1 runs used the API's default temperature, recorded as a difference). API keys are read from
an environment variable and never appear in logs, reprs, cards or error messages.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from multiid_bench.errors import ConfigError, MissingWeightsError

__all__ = [
    "DEFAULT_QWEN_WEIGHTS",
    "IMAGE_PREP_VERSION",
    "Answer",
    "HttpJudgeBackend",
    "JudgeRequest",
    "QwenVLJudgeBackend",
    "prepare_judge_images",
    "retry_after_s",
    "server_error_text",
]

log = logging.getLogger(__name__)

#: The default local judge: Qwen2.5-VL-7B-Instruct (manifest ``multiid_bench/weights/manifests/judges.toml``).
DEFAULT_QWEN_WEIGHTS = "qwen2.5-vl-7b-instruct"
IMAGE_PREP_VERSION = "omnicontext-1024px-mult16-jpeg75-v1"
_MAX_INPUT_PIXELS = 1024 * 1024


@dataclass(frozen=True)
class JudgeRequest:
    """One question to the judge: the prompt and the JPEG bytes of every image, in message order."""

    prompt: str
    images: tuple[bytes, ...]


@dataclass(frozen=True)
class Answer:
    """The judge's text, or the error that prevented one (a transport error, a refused request).

    ``unreachable`` is true when no attempt got any HTTP answer at all (connection refused, DNS, timeout):
    a batch of such answers means the judge is down, and the run stops (exit 7) instead of failing every case.
    """

    text: str | None
    error: str | None = None
    unreachable: bool = False


def _jpeg(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="JPEG")  # PIL's default quality (75), as openai_util.encode_pil_image
    return buf.getvalue()


def _input_size(w: int, h: int) -> tuple[int, int]:
    if w * h > _MAX_INPUT_PIXELS:
        ratio = math.sqrt(_MAX_INPUT_PIXELS / (w * h))
        w, h = int(w * ratio), int(h * ratio)
    return (w // 16 * 16, h // 16 * 16)


def prepare_judge_images(inputs: Sequence[str | Path], output: str | Path) -> tuple[bytes, ...]:
    """JPEG bytes of the input images (resized as OmniContext does) followed by the generated image.

    Raises:
        OSError: an image cannot be read (the caller records the case as failed with this message).
    """
    from PIL import Image, ImageOps

    out: list[bytes] = []
    for p in inputs:
        with Image.open(p) as im:
            im.load()
            size = _input_size(*im.size)
            if min(size) < 16:
                raise OSError(f"input image {p} is {im.size[0]}x{im.size[1]}: too small after flooring to 16 px")
            resized = im.resize(size)
        out.append(_jpeg(ImageOps.exif_transpose(resized).convert("RGB")))
    with Image.open(output) as im:
        im.load()
        out.append(_jpeg(ImageOps.exif_transpose(im).convert("RGB")))
    return tuple(out)


# ---------------------------------------------------------------------------------------------- HTTP


class HttpJudgeBackend:
    """An OpenAI-compatible ``/chat/completions`` endpoint: vLLM or SGLang serving Qwen2.5-VL, or OpenAI.

    Args:
        url: base URL (``http://127.0.0.1:8000/v1``) or the full ``.../chat/completions`` URL.
        model: the model name the server expects (``Qwen/Qwen2.5-VL-7B-Instruct``, ``gpt-4.1``).
        revision: what you know about the served weights (a Hub commit); part of the judge id and cache
            key. The server's own answer cannot be verified, so say it here when you pin it.
        api_key_env: environment variable holding the key (none sent when unset or empty).
        max_tokens: answer budget (1400 as OmniContext's script).
        temperature: 0 = greedy (default); the official GPT-4.1 run used the API default.
        timeout_s / max_retries / backoff_s: transport errors, 429 and 5xx are retried with exponential
            backoff, at most ``max_retries`` times per request; a 429 or 503 with ``Retry-After`` waits what
            the server asks instead, at most ``max_wait_s`` seconds.
        workers: concurrent requests.
    """

    def __init__(self, url: str, model: str, *, revision: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 max_tokens: int = 1400, temperature: float = 0.0, timeout_s: float = 180.0, max_retries: int = 3,
                 backoff_s: float = 1.0, workers: int = 8, max_wait_s: float = 60.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--judge-url must start with http:// or https://, got {url!r}")
        if max_retries < 0 or workers < 1 or max_tokens < 1:
            raise ConfigError("judge HTTP backend: max_retries >= 0, workers >= 1 and max_tokens >= 1 are required")
        self.url = url.rstrip("/") if url.rstrip("/").endswith("/chat/completions") else url.rstrip("/") + "/chat/completions"
        self.model = model
        self.revision = revision
        self.api_key_env = api_key_env
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.workers = workers

    def __repr__(self) -> str:  # never the key
        return f"HttpJudgeBackend(url={self.url!r}, model={self.model!r}, revision={self.revision!r})"

    @property
    def deterministic(self) -> bool:
        return self.temperature == 0

    @property
    def judge_id(self) -> str:
        return f"http:{self.model}@{self.revision or 'unpinned'}"

    def describe(self) -> dict[str, Any]:
        return {"backend": "http", "url": self.url, "model": self.model, "revision": self.revision,
                "max_tokens": self.max_tokens, "temperature": self.temperature, "api_key_env": self.api_key_env}

    def load(self, device: str = "cpu") -> None:
        """Nothing to load; the server holds the model."""

    def _payload(self, req: JudgeRequest) -> bytes:
        content: list[dict[str, Any]] = [{"type": "text", "text": req.prompt}]
        for img in req.images:
            b64 = base64.b64encode(img).decode("ascii")
            content.append({"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{b64}"}})
        body = {"model": self.model, "messages": [{"role": "user", "content": content}],
                "max_tokens": self.max_tokens, "temperature": self.temperature}
        return json.dumps(body).encode()

    def _ask_one(self, req: JudgeRequest) -> Answer:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = self._payload(req)
        last = "no attempt made"
        answered = False  # did any attempt get an HTTP status back? (no: the server is unreachable)
        wait: float | None = None  # what the server asked for (Retry-After), else exponential backoff
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1) if wait is None else wait)
            wait = None
            try:
                request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout_s) as resp:
                    reply = json.loads(resp.read().decode("utf-8"))
                text = reply["choices"][0]["message"]["content"]
                return Answer(text if isinstance(text, str) else json.dumps(text))
            except urllib.error.HTTPError as e:
                answered = True
                last = f"HTTP {e.code} from {self.url}{server_error_text(e)}"
                if e.code != 429 and e.code < 500:  # a refused request does not get better by asking again
                    return Answer(None, last)
                asked = retry_after_s(e.headers.get("Retry-After")) if e.headers is not None else None
                if asked is not None:  # 429 or 503 with Retry-After: wait what the server asks (capped)
                    wait = min(asked, self.max_wait_s)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                last = f"cannot reach {self.url}: {getattr(e, 'reason', e)}"
            except (KeyError, IndexError, TypeError, ValueError) as e:
                return Answer(None, f"unexpected reply from {self.url}: {type(e).__name__}: {e}")
        return Answer(None, f"{last} (gave up after {self.max_retries + 1} attempts)", unreachable=not answered)

    def ask(self, requests: Sequence[JudgeRequest]) -> list[Answer]:
        """Answers in request order, ``workers`` requests in flight."""
        if len(requests) <= 1 or self.workers == 1:
            return [self._ask_one(r) for r in requests]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(self._ask_one, requests))


def server_error_text(e: "urllib.error.HTTPError") -> str:
    """``": <message> (<code or type>)"`` from an OpenAI-style error body, else the body's first 200 characters.

    The server's own words say what to fix (``insufficient_quota``, ``model not found``), so they go into the
    failure reason; an empty string when the body is empty or unreadable.

    Example:
        >>> import io, urllib.error
        >>> body = b'{"error": {"message": "You exceeded your current quota", "code": "insufficient_quota"}}'
        >>> server_error_text(urllib.error.HTTPError("u", 429, "Too Many Requests", {}, io.BytesIO(body)))
        ': You exceeded your current quota (insufficient_quota)'
    """
    try:
        raw = e.read().decode("utf-8", "replace").strip()
    except Exception:  # noqa: BLE001 - the detail is optional, the status code is already reported
        return ""
    if not raw:
        return ""
    try:
        body = json.loads(raw)
    except ValueError:
        return f": {raw[:200]}"
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        msg, code = err.get("message"), err.get("code") or err.get("type")
        text = " ".join(str(x) for x in (msg,) if x) + (f" ({code})" if code else "")
        return f": {text.strip()[:200]}" if text.strip() else ""
    if isinstance(err, str):
        return f": {err[:200]}"
    return f": {raw[:200]}"


def retry_after_s(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), ``None`` if absent/bad.

    Example:
        >>> retry_after_s("2"), retry_after_s(None), retry_after_s("soon")
        (2.0, None, None)
    """
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    import datetime as dt

    now = dt.datetime.now(when.tzinfo or dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


# ---------------------------------------------------------------------------------------------- local


class QwenVLJudgeBackend:
    """Qwen2.5-VL through ``transformers`` (``Qwen2_5_VLForConditionalGeneration`` + ``AutoProcessor``).

    Args:
        weights: a manifest id (default :data:`DEFAULT_QWEN_WEIGHTS`, resolved through the weights store:
            pinned Hub repo and commit) -- ignored when ``model_dir`` is given.
        model_dir: a local ``save_pretrained`` folder (model + processor) instead of the store.
        batch_size: requests per ``generate`` call (left padding).
        max_new_tokens: answer budget.
        dtype: ``"bfloat16"`` (default on CUDA) or ``"float32"`` (default on CPU).
    """

    deterministic = True

    def __init__(self, weights: str = DEFAULT_QWEN_WEIGHTS, *, model_dir: str | os.PathLike[str] | None = None,
                 batch_size: int = 4, max_new_tokens: int = 1024, dtype: str | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, offline: bool | None = None) -> None:
        if batch_size < 1 or max_new_tokens < 1:
            raise ConfigError("Qwen judge: batch_size and max_new_tokens must be >= 1")
        if dtype not in (None, "bfloat16", "float32"):
            raise ConfigError(f"Qwen judge dtype must be bfloat16 or float32, got {dtype!r}")
        self.weights = weights
        self.model_dir = Path(model_dir).expanduser() if model_dir is not None else None
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.dtype_name = dtype
        self.cache_dir = cache_dir
        self.offline = offline
        self.device: str | None = None
        self._path: Path | None = None
        self._revision: str | None = None
        self._model: Any = None
        self._processor: Any = None

    def resolve(self) -> Path:
        """The model folder (store or local), without loading it.

        Raises:
            MissingWeightsError: the folder is absent (names the fix).
        """
        if self._path is None:
            if self.model_dir is not None:
                if not (self.model_dir / "config.json").is_file():
                    raise MissingWeightsError(
                        f"judge model folder {self.model_dir} has no config.json; pass a save_pretrained folder "
                        f"of a Qwen2.5-VL model (model + processor), or omit --judge-model-dir to use "
                        f"`mbench weights download {self.weights}`")
                self._path, self._revision = self.model_dir, "local-" + _folder_digest(self.model_dir)
            else:
                from multiid_bench.weights import get_store

                store = get_store(self.cache_dir, offline=self.offline)
                entry = store.entry(self.weights)
                self._path = store.resolve(self.weights)
                self._revision = entry.files[0].revision
        return self._path

    @property
    def judge_id(self) -> str:
        self.resolve()
        name = self.model_dir.name if self.model_dir is not None else self.weights
        return f"transformers:{name}@{self._revision}"

    def describe(self) -> dict[str, Any]:
        return {"backend": "transformers", "weights": None if self.model_dir else self.weights,
                "model_dir": str(self.model_dir) if self.model_dir else None, "revision": self._revision,
                "max_new_tokens": self.max_new_tokens, "batch_size": self.batch_size, "decoding": "greedy",
                "dtype": self.dtype_name}

    def load(self, device: str = "cpu") -> None:
        import torch
        import transformers
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        path = self.resolve()
        if self.dtype_name is None:
            self.dtype_name = "bfloat16" if str(device).startswith("cuda") else "float32"
        dtype = getattr(torch, self.dtype_name)
        kw = {"dtype": dtype} if int(transformers.__version__.split(".")[0]) >= 5 else {"torch_dtype": dtype}
        self._processor = AutoProcessor.from_pretrained(str(path))
        self._processor.tokenizer.padding_side = "left"
        self._model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(path), **kw).to(device).eval()
        self.device = device
        log.info("judge %s loaded on %s (%s)", self.judge_id, device, self.dtype_name)

    def ask(self, requests: Sequence[JudgeRequest]) -> list[Answer]:
        """Greedy answers in request order, ``batch_size`` requests per ``generate`` call."""
        import torch
        from PIL import Image

        if self._model is None:
            raise RuntimeError("QwenVLJudgeBackend: call load(device) first")
        out: list[Answer] = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            texts, images = [], []
            for r in chunk:
                content = [{"type": "text", "text": r.prompt}] + [{"type": "image"} for _ in r.images]
                texts.append(self._processor.apply_chat_template(
                    [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False))
                images.append([Image.open(io.BytesIO(b)).convert("RGB") for b in r.images])
            inputs = self._processor(text=texts, images=images, padding=True, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                ids = self._model.generate(**inputs, do_sample=False, max_new_tokens=self.max_new_tokens,
                                           temperature=None, top_p=None, top_k=None)
            answers = self._processor.batch_decode(ids[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            out.extend(Answer(a) for a in answers)
        return out


def _folder_digest(folder: Path) -> str:
    """12 hex of config.json's bytes plus every weight file's name and size (no multi-GB hashing)."""
    h = hashlib.sha256((folder / "config.json").read_bytes())
    for p in sorted(folder.glob("*.safetensors")):
        h.update(f"{p.name}:{p.stat().st_size}".encode())
    return h.hexdigest()[:12]
