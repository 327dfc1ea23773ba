"""What ``mbench ls models`` shows: every adapter's capabilities and whether its weights are on this machine.

Adapter modules import no torch/diffusers at module level, so describing all of them is cheap. Weight
presence is a cache lookup only (no network, no loading): hub ids (``owner/repo`` or ``owner/repo:path``) are
looked up in the Hugging Face cache, ids of the toolkit's weight store through its status; anything else
(e.g. "insightface antelopev2", installed by the upstream environment) is reported as unknown.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

__all__ = ["AdapterInfo", "describe_adapters", "weight_presence"]

log = logging.getLogger(__name__)

Presence = Literal["present", "missing", "unknown", "none"]
_HUB = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(:.+)?$")


@dataclass(frozen=True)
class AdapterInfo:
    """One row of ``mbench ls models``."""

    name: str
    aliases: tuple[str, ...]
    version: str
    capabilities: dict[str, Any]
    weights: Presence
    weight_detail: dict[str, str]
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "aliases": list(self.aliases), "version": self.version,
                "capabilities": self.capabilities, "weights": self.weights, "weight_detail": self.weight_detail,
                "error": self.error}


def _hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _one(weight_id: str, store_ids: set[str]) -> str:
    if weight_id in store_ids:
        from multiid_bench.weights import get_store

        states = {s.state for s in get_store().status(weight_id)}
        return "present" if states <= {"ok", "unverified"} else "missing"
    if not _HUB.match(weight_id) or " " in weight_id:
        return "unknown"
    repo, _, path = weight_id.partition(":")
    folder = _hub_cache() / ("models--" + repo.replace("/", "--")) / "snapshots"
    if not folder.is_dir():
        return "missing"
    snapshots = [p for p in folder.iterdir() if p.is_dir()]
    if not path:
        return "present" if any(any(s.iterdir()) for s in snapshots) else "missing"
    return "present" if any((s / path).exists() for s in snapshots) else "missing"


def weight_presence(weight_ids: tuple[str, ...]) -> tuple[Presence, dict[str, str]]:
    """Overall presence (missing beats unknown beats present) and the state of each id."""
    if not weight_ids:
        return "none", {}
    try:
        from multiid_bench.weights import load_manifests

        store_ids = set(load_manifests())
    except Exception as e:  # a broken manifest must not break a listing
        log.debug("weights manifests unavailable: %s", e)
        store_ids = set()
    detail = {w: _one(w, store_ids) for w in weight_ids}
    states = set(detail.values())
    overall: Presence = "missing" if "missing" in states else "unknown" if "unknown" in states else "present"
    return overall, detail


def describe_adapters(*, check_weights: bool = True) -> list[AdapterInfo]:
    """Every registered adapter, imported (cheaply) for its capabilities; an import error is shown, not raised."""
    from multiid_bench.adapters import ADAPTERS

    aliases: dict[str, list[str]] = {}
    for alias, target in ADAPTERS.aliases().items():
        aliases.setdefault(target, []).append(alias)
    rows = []
    for name in ADAPTERS.names():
        try:
            cls = ADAPTERS.get(name)
        except Exception as e:  # e.g. a third-party entry point whose package is broken
            rows.append(AdapterInfo(name, tuple(sorted(aliases.get(name, []))), "?", {}, "unknown", {},
                                    f"{type(e).__name__}: {e}"))
            continue
        caps = cls.capabilities
        presence, detail = weight_presence(caps.weight_ids) if check_weights else ("unknown", {})
        rows.append(AdapterInfo(name, tuple(sorted(aliases.get(name, []))), cls.version, caps.to_dict(), presence,
                                detail))
    return rows
