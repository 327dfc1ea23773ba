"""Runs on the Hugging Face Hub: ``mbench push`` (export + upload) and ``hf://USER/NAME`` run sources.

Why through ``huggingface_hub``: it already knows the login (``hf auth login``'s stored token or
``$HF_TOKEN``), the cache (``$HF_HUB_CACHE``), offline mode (``HF_HUB_OFFLINE``) and revisions. mbench
never reads, prints or writes the token: it only asks whether one is present, so that a missing login
fails before anything is exported, with the command that fixes it.

A pushed run is an exported folder (:mod:`.export`), so a downloaded snapshot is again a folder that
``mbench leaderboard`` / ``compare`` / ``mb.load_run`` read. ``hf://USER/NAME[@REVISION]`` resolves to
that snapshot: from the cache when it is there (offline too), otherwise downloaded (only the JSON files
and the card; the parquet view is not needed to rank).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from multiid_bench.errors import ConfigError, MissingDataError, MissingDependencyError

__all__ = ["HF_PREFIX", "PushResult", "is_hub_source", "parse_hub_source", "push_run", "resolve_run_source"]

HF_PREFIX = "hf://"
REPO_TYPE = "dataset"
#: What a leaderboard needs of a pushed run (the parquet files are for ``datasets`` users).
RUN_FILES = ("results.json", "run.json", "cases.jsonl", "README.md")


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    url: str
    files: list[str]  # paths inside the repo, as uploaded
    private: bool


def is_hub_source(source: str) -> bool:
    return str(source).startswith(HF_PREFIX)


def parse_hub_source(source: str) -> tuple[str, str | None]:
    """``hf://USER/NAME[@REVISION]`` -> (repo id, revision or None).

    Example:
        >>> parse_hub_source("hf://alice/uno-multiid@v1")
        ('alice/uno-multiid', 'v1')
    """
    rest = str(source)[len(HF_PREFIX):] if is_hub_source(source) else str(source)
    if rest.startswith("datasets/"):
        rest = rest[len("datasets/"):]
    repo, _, revision = rest.partition("@")
    parts = repo.strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"{source!r} is not a Hub dataset: write hf://USER/NAME (optionally @REVISION)")
    return "/".join(parts), (revision or None)


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError as e:  # a core dependency; only a broken install lacks it
        raise MissingDependencyError("huggingface_hub is not installed: pip install huggingface_hub") from e
    return huggingface_hub


def _offline() -> bool:
    from multiid_bench._io import is_offline

    hub = _hub()
    return is_offline() or bool(getattr(hub.constants, "HF_HUB_OFFLINE", False))


def _network_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the Hub cannot be reached" (for the one-line offline message)."""
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    hub = _hub()
    for name in ("OfflineModeIsEnabled", "LocalEntryNotFoundError"):
        t = getattr(hub.errors, name, None)
        if isinstance(t, type):
            types.append(t)
    import importlib

    pairs = (("httpx", "TransportError"), ("httpx2", "TransportError"),  # huggingface_hub 1.x / 2.x clients
             ("requests.exceptions", "ConnectionError"), ("requests.exceptions", "Timeout"))  # 0.x
    for module, name in pairs:
        try:
            t = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if isinstance(t, type):
            types.append(t)
    return tuple(types)


def _unreachable(exc: BaseException) -> bool:
    types = _network_error_types()
    seen = exc
    while seen is not None:
        if isinstance(seen, types):
            return True
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return False


def push_run(run: str | Path, repo_id: str, *, private: bool = False, with_images: bool = False,
             commit_message: str | None = None,
             on_exported: Callable[[Path], None] | None = None) -> PushResult:
    """Export ``run`` (:func:`.export.export_run`) to a temporary folder and upload it as a Hub dataset.

    The token is whatever ``huggingface_hub`` finds (``$HF_TOKEN`` or the stored login); it is passed to
    no mbench function and written nowhere.

    Raises:
        MissingDataError (exit 3): offline (``--offline``, ``MBENCH_OFFLINE``/``HF_HUB_OFFLINE``), no login,
            or the Hub could not be reached.
    """
    repo_id, revision = parse_hub_source(repo_id)
    if revision is not None:
        raise ConfigError(f"--repo {repo_id}@{revision}: push to a repo id without @REVISION")
    if _offline():
        raise MissingDataError(f"cannot push to the Hub while offline (MBENCH_OFFLINE/HF_HUB_OFFLINE is set); "
                               f"unset it, or share the folder written by 'mbench export {run} --out DIR'")
    hub = _hub()
    if hub.get_token() is None:
        raise MissingDataError("no Hugging Face token: run 'hf auth login' (or set HF_TOKEN) and push again")
    from multiid_bench.leaderboard.export import export_run

    with tempfile.TemporaryDirectory(prefix="mbench-push-") as tmp:
        exported = export_run(run, Path(tmp) / "dataset", with_images=with_images)
        if on_exported is not None:
            on_exported(exported.out)
        files = sorted(str(p.relative_to(exported.out)) for p in exported.out.rglob("*") if p.is_file())
        api = hub.HfApi()
        try:
            url = api.create_repo(repo_id=repo_id, repo_type=REPO_TYPE, private=private, exist_ok=True)
            api.upload_folder(repo_id=repo_id, repo_type=REPO_TYPE, folder_path=str(exported.out),
                              commit_message=commit_message or f"mbench push: {Path(run).name}")
        except Exception as e:
            if _unreachable(e):
                raise MissingDataError(f"cannot reach the Hugging Face Hub to push {repo_id} "
                                       f"({type(e).__name__}); check the network and retry") from e
            raise
    return PushResult(repo_id=repo_id, url=str(url), files=files, private=private)


def resolve_run_source(source: str | Path) -> Path:
    """A run source -> a local folder: ``hf://USER/NAME[@REV]`` through the Hub cache (downloading the JSON
    files when online), anything else unchanged.

    Raises:
        MissingDataError (exit 3): the repo is neither cached nor reachable.
    """
    if not is_hub_source(str(source)):
        return Path(source)
    repo_id, revision = parse_hub_source(str(source))
    hub = _hub()
    offline = _offline()
    try:
        folder = hub.snapshot_download(repo_id=repo_id, repo_type=REPO_TYPE, revision=revision,
                                       allow_patterns=list(RUN_FILES), local_files_only=offline)
    except Exception as e:
        not_found = getattr(hub.errors, "RepositoryNotFoundError", None)
        if not_found is not None and isinstance(e, not_found):
            raise MissingDataError(f"{source}: no such Hub dataset (or it is private and you are not logged in: "
                                   "hf auth login)") from e
        if _unreachable(e):
            where = "offline mode is on" if offline else "the Hub could not be reached"
            raise MissingDataError(f"{source} is not in the Hugging Face cache and {where}; "
                                   f"download it once online (mbench leaderboard {source})") from e
        raise
    return Path(folder)
