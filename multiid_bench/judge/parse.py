"""Reading a 0-10 score out of a judge's answer: JSON first, then plain text, never a guess.

OmniContext's own parser (``omnicontext/json_util.py: mllm_output_to_dict``) takes the text between the first
``{`` and the last ``}``, drops newlines and ``json.loads`` it (with a key-quoting repair on failure), or
accepts an answer that is only an integer 0-10; when nothing parses after its retries, the evaluation script
**guesses a random score** (``random.randint(0, 10)``). We parse the same shapes, add a few plain-text
shapes that small judges produce (``Score: 7``, ``7/10``), and return *no score* instead of a guess: the
caller turns that into a failure row carrying the raw answer.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

__all__ = ["ParsedScore", "parse_score"]

_NUM = r"(-?\d+(?:\.\d+)?)"
_TEXT_PATTERNS = (
    re.compile(r"[\"']?\bscore\b[\"']?\s*(?:[:=]|is)\s*\[?\s*" + _NUM, re.IGNORECASE),
    re.compile(r"(?<![\d.])" + _NUM + r"\s*/\s*10(?!\.?\d)"),
    re.compile(r"(?<![\d.])" + _NUM + r"\s+out\s+of\s+10(?!\.?\d)", re.IGNORECASE),
)


@dataclass(frozen=True)
class ParsedScore:
    """A parsed answer.

    Attributes:
        score: the 0-10 score, or None when none could be read (never a default).
        reasoning: the ``reasoning`` field when the answer was JSON.
        source: how it was read: ``json``, ``json-repaired``, ``number``, ``text`` or ``none``.
        error: why no score was read (None when ``score`` is set).
    """

    score: float | None
    reasoning: str | None
    source: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.score is not None


def _as_score(value: object) -> float | None:
    if isinstance(value, list) and len(value) == 1:  # "[7]": the shape OmniContext's fallback writes
        value = value[0]
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 10:
        return float(value)
    return None


def _repair(text: str) -> str:
    """Quote bare keys and turn single-quoted strings into double-quoted ones (common small-model slips)."""
    text = re.sub(r"([{,]\s*)([A-Za-z_]\w*)\s*:", r'\1"\2":', text)
    return re.sub(r"'([^'\"]*)'", r'"\1"', text)


def _from_json(text: str) -> ParsedScore | None:
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end <= start:
        return None
    body = text[start : end + 1].replace("\n", " ")
    for source, candidate in (("json", body), ("json-repaired", _repair(body))):
        try:
            data = json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        if "score" not in data:
            return ParsedScore(None, None, "none", "JSON answer has no 'score' field")
        score = _as_score(data["score"])
        reasoning = data.get("reasoning")
        reasoning = reasoning if isinstance(reasoning, str) else None
        if score is None:
            return ParsedScore(None, reasoning, "none", f"'score' is {data['score']!r}, not a number in [0, 10]")
        return ParsedScore(score, reasoning, source)
    return None


def parse_score(text: str | None) -> ParsedScore:
    """The score in a judge's answer (see the module docstring for the accepted shapes).

    Plain-text shapes count only when they agree: two different numbers (``Score: 7 ... 3/10``) are
    ambiguous and give no score.

    Example:
        >>> parse_score('{"score": 8, "reasoning": "close"}').score
        8.0
        >>> parse_score("Score: 6. The pose differs.").score
        6.0
        >>> parse_score("I cannot tell.").score is None
        True
    """
    if text is None or not text.strip():
        return ParsedScore(None, None, "none", "empty answer")
    parsed = _from_json(text)
    if parsed is not None and (parsed.ok or "{" in text and '"score"' in text):
        return parsed
    stripped = text.strip()
    if re.fullmatch(r"\d+", stripped):
        score = _as_score(int(stripped))
        if score is not None:
            return ParsedScore(score, None, "number")
        return ParsedScore(None, None, "none", f"number {stripped} is outside [0, 10]")
    found = {float(m.group(1)) for pat in _TEXT_PATTERNS for m in pat.finditer(text)}
    if len(found) == 1:
        score = _as_score(next(iter(found)))
        if score is not None:
            return ParsedScore(score, None, "text")
        return ParsedScore(None, None, "none", f"score {next(iter(found))} is outside [0, 10]")
    if len(found) > 1:
        return ParsedScore(None, None, "none", f"ambiguous: several scores in the text {sorted(found)}")
    if parsed is not None:
        return parsed
    return ParsedScore(None, None, "none", "no JSON object and no score in the text")
