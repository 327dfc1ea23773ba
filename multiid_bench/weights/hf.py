"""Hub-hosted weights live in the Hugging Face cache itself, never in a second copy.

Why: a machine (or an air-gapped cluster mirroring an HF cache) that already holds SigLIP so400m (3.5 GB)
or FLUX.1-dev must not download it again into mbench's own cache. So a manifest file with ``repo`` is
looked up with ``try_to_load_from_cache`` and fetched with ``hf_hub_download`` / ``snapshot_download``
into the default HF cache; the path returned is the cache's own ``snapshots/<commit>/<file>`` symlink.

The cache folder, endpoint and token follow the Hugging Face conventions, read at call time (so a test or
a job script may set them after import): ``HF_HUB_CACHE`` > ``HF_HOME``/hub > ``$XDG_CACHE_HOME``/
huggingface/hub > ``~/.cache/huggingface/hub``; ``HF_ENDPOINT`` for mirrors; ``HF_TOKEN`` or
``hf auth login`` for gated repos (FLUX.1-dev), read by ``huggingface_hub`` itself.

Hashes: the cache names a blob by its Hub etag, which for an LFS file *is* the file's sha256 (and for a
small git file its git blob sha1), so a cached file is checkable offline against the Hub's own record.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiid_bench.weights.manifest import WeightFile

__all__ = [
    "HubFileInfo",
    "blob_etag",
    "cached_file",
    "cached_snapshot",
    "download_file",
    "download_snapshot",
    "etag_kind",
    "git_blob_sha1",
    "hf_hub_cache",
    "hub_file_info",
    "is_pinned",
    "snapshot_commit",
    "snapshot_gaps",
]

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


def is_pinned(revision: str) -> bool:
    """True for a full 40-hex commit id (a branch or tag such as ``main`` can move under us)."""
    return bool(_COMMIT.match(revision or ""))


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, with the precedence ``huggingface_hub`` uses (read now, not at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(xdg).expanduser() / "huggingface" / "hub"


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def snapshot_commit(path: str | os.PathLike[str]) -> str | None:
    """The commit of a path inside ``.../snapshots/<commit>/...`` (None outside an HF cache snapshot)."""
    parts = Path(path).parts
    for i, part in enumerate(parts[:-1]):
        if part == "snapshots" and is_pinned(parts[i + 1]):
            return parts[i + 1]
    return None


def blob_etag(path: str | os.PathLike[str]) -> str:
    """The etag the cache stored the file under (``blobs/<etag>``; '' when the path is not a cache symlink)."""
    real = Path(path).resolve()
    return real.name if real.parent.name == "blobs" else ""


def git_blob_sha1(path: str | os.PathLike[str]) -> str:
    """git's object id of a file (``sha1("blob <size>\\0" + bytes)``): the Hub's hash of a non-LFS file."""
    p = Path(path)
    h = hashlib.sha1(f"blob {p.stat().st_size}\0".encode())  # noqa: S324 - git's object id, not security
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def cached_file(wf: WeightFile) -> Path | None:
    """The cached copy of a Hub file at the manifest's revision, without any network access."""
    from huggingface_hub import try_to_load_from_cache

    got = try_to_load_from_cache(wf.repo, wf.filename or wf.name, cache_dir=str(hf_hub_cache()),
                                 revision=wf.revision, repo_type=wf.repo_type)
    return Path(got) if isinstance(got, str) and Path(got).is_file() else None


def _snapshot_folder(wf: WeightFile) -> Path | None:
    repo_dir = hf_hub_cache() / f"{wf.repo_type}s--{wf.repo.replace('/', '--')}"
    commit = wf.revision
    if not is_pinned(commit):
        try:
            commit = (repo_dir / "refs" / commit).read_text().strip()
        except OSError:
            return None
    folder = repo_dir / "snapshots" / commit
    return folder if folder.is_dir() else None


def snapshot_gaps(folder: Path, patterns: tuple[str, ...]) -> list[str]:
    """``allow_patterns`` that match no file of ``folder`` (an incomplete snapshot); [] when complete."""
    names = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    return [pat for pat in patterns if not any(fnmatch.fnmatch(n, pat) for n in names)]


def cached_snapshot(wf: WeightFile) -> Path | None:
    """The cached snapshot folder of a diffusers-style entry when every ``allow_patterns`` item is present."""
    folder = _snapshot_folder(wf)
    if folder is None or snapshot_gaps(folder, wf.allow_patterns):
        return None
    return folder


def download_file(wf: WeightFile, *, force: bool = False) -> Path:
    """``hf_hub_download`` into the HF cache (token, endpoint and Xet handled by ``huggingface_hub``)."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=wf.repo, filename=wf.filename or wf.name, revision=wf.revision,
                                repo_type=wf.repo_type, cache_dir=str(hf_hub_cache()), endpoint=_endpoint(),
                                force_download=force))


def download_snapshot(wf: WeightFile, *, force: bool = False) -> Path:
    """``snapshot_download(allow_patterns=...)`` of a diffusers folder into the HF cache; its snapshot path."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=wf.repo, revision=wf.revision, repo_type=wf.repo_type,
                                  allow_patterns=list(wf.allow_patterns), cache_dir=str(hf_hub_cache()),
                                  endpoint=_endpoint(), force_download=force))


@dataclass(frozen=True)
class HubFileInfo:
    """What the Hub says about one file at one revision: LFS sha256 (None for a plain git file), size, git oid."""

    path: str
    size: int
    blob_id: str
    sha256: str | None


def hub_file_info(wf: WeightFile, api: Any = None, *, revision: str | None = None) -> HubFileInfo:
    """The Hub's metadata of a manifest file (``HfApi.get_paths_info``); needs the network.

    Raises:
        FileNotFoundError: the path does not exist at that revision.
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(endpoint=_endpoint())
    name = wf.filename or wf.name
    infos = api.get_paths_info(wf.repo, [name], revision=revision or wf.revision, repo_type=wf.repo_type)
    for info in infos:
        if getattr(info, "path", None) == name and hasattr(info, "blob_id"):
            lfs = getattr(info, "lfs", None)
            sha = getattr(lfs, "sha256", None) if lfs is not None else None
            return HubFileInfo(path=name, size=int(info.size), blob_id=str(info.blob_id),
                               sha256=str(sha).lower() if sha else None)
    raise FileNotFoundError(f"{wf.repo} has no file {name!r} at revision {revision or wf.revision}")


def etag_kind(etag: str) -> str:
    """``sha256`` for an LFS blob name, ``git-sha1`` for a plain git blob name, '' otherwise."""
    if _SHA256.match(etag):
        return "sha256"
    if _COMMIT.match(etag):
        return "git-sha1"
    return ""
