"""Model weights: manifests (``manifests/*.toml``), verified files, offline preflight.

Typical use::

    from multiid_bench.weights import resolve, resolve_file
    path = resolve("insightface-buffalo-l", "w600k_r50.onnx")   # verified local path, downloaded if allowed
    info = resolve_file("clip-vit-b-16-openai")                  # + location, commit, sha256 (provenance)

Hub-hosted files stay in the Hugging Face cache (``HF_HOME`` / ``HF_HUB_CACHE``); others go to mbench's
cache (``MBENCH_HOME``). See docs/weights.md.

Each area adds its own ``manifests/<area>.toml``; every file there is merged automatically.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from multiid_bench.weights.manifest import MANIFEST_DIR, WeightEntry, WeightFile, load_manifests
from multiid_bench.weights.hf import hf_hub_cache, is_pinned
from multiid_bench.weights.messages import missing_error, missing_of
from multiid_bench.weights.store import (
    FileStatus,
    MissingFile,
    ResolvedFile,
    WeightStore,
    cache_root,
    env_override_name,
    format_missing,
    is_offline,
    sha256_file,
    verify_file,
)

__all__ = [
    "MANIFEST_DIR",
    "FileStatus",
    "MissingFile",
    "ResolvedFile",
    "WeightEntry",
    "WeightFile",
    "WeightStore",
    "cache_root",
    "env_override_name",
    "format_missing",
    "get_store",
    "hf_hub_cache",
    "is_offline",
    "is_pinned",
    "load_manifests",
    "missing_error",
    "missing_of",
    "preflight",
    "resolve",
    "resolve_file",
    "sha256_file",
    "verify_file",
]


def get_store(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    offline: bool | None = None,
    overrides: Mapping[str, str | os.PathLike[str]] | None = None,
) -> WeightStore:
    """A store over all manifests (re-read on each call, so new manifest files need no restart)."""
    return WeightStore(cache_dir, offline=offline, overrides=overrides)


def resolve(
    weight_id: str,
    filename: str | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
) -> Path:
    """Local verified path of ``weight_id`` (its ``filename`` when it has several files).

    Raises:
        MissingWeightsError: absent and offline, or the download failed / did not match its sha256;
            the message lists the target path and ``mbench weights download <id>``.
    """
    return get_store(cache_dir, offline=offline).resolve(weight_id, filename)


def resolve_file(
    weight_id: str,
    filename: str | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
) -> ResolvedFile:
    """Like :func:`resolve`, with provenance: path, location (hf-cache, mbench-cache, package, override),
    verified sha256 and where that hash came from, repo, revision and the commit of the HF snapshot."""
    return get_store(cache_dir, offline=offline).resolve_file(weight_id, filename)


def preflight(
    weight_ids: Iterable[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
) -> list[MissingFile]:
    """Every file of ``weight_ids`` not present locally, listed before any model loads."""
    return get_store(cache_dir, offline=offline).preflight(weight_ids)
