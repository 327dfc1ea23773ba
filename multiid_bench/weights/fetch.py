"""Fetching a weight file that is not local yet: Hub files into the HF cache, the others into mbench's cache.

Sources are tried in manifest order (Hub, then direct URLs, then zip members); a failed source moves on to
the next, a checksum refusal is reported in full, and an unpinned Hub revision is refused when
``MBENCH_REQUIRE_PINNED=1`` (CI, paper reproductions) before any network access.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from multiid_bench.errors import ConfigError, MissingWeightsError
from multiid_bench.weights import hf
from multiid_bench.weights.download import ProgressFn, bind_progress, fetch_url, fetch_zip_member
from multiid_bench.weights.manifest import WeightEntry, WeightFile
from multiid_bench.weights.messages import MissingFile
from multiid_bench.weights.verify import ResolvedFile, Stamps, sha256_file

__all__ = ["FetchingStore", "fetch", "gist", "remote_size", "require_pinned"]


class FetchingStore(Protocol):
    """What fetching needs from the weight store (``weights.store.WeightStore`` is the one implementation).

    Why a protocol: the store calls :func:`fetch`, so this module must not import the store back; the store's
    verification and missing-file helpers are public methods, named here.
    """

    offline: bool
    hub_api: Any
    stamps: Stamps

    def own_path(self, weight_id: str, wf: WeightFile) -> Path: ...

    def verified_file(self, entry: WeightEntry, wf: WeightFile, path: Path, location: str) -> ResolvedFile: ...

    def verify(self, entry: WeightEntry, wf: WeightFile, path: Path, location: str, *, rehash: bool = False,
               hub: hf.HubFileInfo | None = None) -> tuple[str, str]: ...

    def error_for(self, missing: list[MissingFile], **kwargs: Any) -> Exception: ...

    def missing_file(self, entry: WeightEntry, wf: WeightFile, reason: str) -> MissingFile: ...

log = logging.getLogger(__name__)


def require_pinned() -> bool:
    """``MBENCH_REQUIRE_PINNED=1``: refuse Hub revisions that are not commits."""
    return os.environ.get("MBENCH_REQUIRE_PINNED", "").strip().lower() in {"1", "true", "yes", "on"}


def gist(e: BaseException) -> str:
    """First line of an error, shortened for one line of the missing-weights message."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def fetch(store: FetchingStore, entry: WeightEntry, wf: WeightFile, progress: ProgressFn | None, *,
              force: bool) -> ResolvedFile:
    errors: list[str] = []
    if wf.hub:
        try:
            return _fetch_hub(store, entry, wf, force=force)
        except MissingWeightsError as e:  # a checksum refusal: said in full
            errors.append(f"hf://{wf.repo}@{wf.revision}: {str(e).strip().splitlines()[0]}")
        except ConfigError:  # unpinned with MBENCH_REQUIRE_PINNED: a decision, not a failed source
            raise
        except Exception as e:  # noqa: BLE001 - network, auth, gated repo: try the next source
            gated = type(e).__name__ in ("GatedRepoError", "RepositoryNotFoundError") or " 401 " in f" {e} "
            hint = (" -- accept the licence on the model page, then `hf auth login` or set HF_TOKEN; "
                    if gated else ": ")
            errors.append(f"hf://{wf.repo}@{wf.revision}: {type(e).__name__}{hint}{gist(e)}")
            log.info("Hub download of %s / %s failed: %s", entry.id, wf.name, e)  # the final error lists it
    target = store.own_path(entry.id, wf)
    if wf.urls or wf.archive_urls:
        try:
            path = _fetch_own(store, entry, wf, target, progress, errors)
            return store.verified_file(entry, wf, path, "mbench-cache")
        except MissingWeightsError:
            pass
    detail = _summary(errors) or "no download source in the manifest"
    raise store.error_for([store.missing_file(entry, wf, f"download failed: {detail}")], header="could not fetch")

def _fetch_hub(store: FetchingStore, entry: WeightEntry, wf: WeightFile, *, force: bool) -> ResolvedFile:
    if not hf.is_pinned(wf.revision):
        msg = (f"weights {entry.id} / {wf.name}: revision {wf.revision!r} of {wf.repo} is not a commit "
               "(unpinned: the file can change under the same name); `mbench weights pin` fixes the manifest")
        if require_pinned():
            raise ConfigError(msg + " (MBENCH_REQUIRE_PINNED is set).")
        log.warning("%s", msg)
    info = None
    if not wf.sha256 and not wf.snapshot:
        try:
            info = hf.hub_file_info(wf, store.hub_api)
        except Exception as e:  # noqa: BLE001 - metadata is a cross-check; the cache etag still holds
            log.info("no Hub metadata for %s / %s (%s); checking against the cache's etag", entry.id, wf.name, e)
    if wf.snapshot:
        folder = hf.download_snapshot(wf, force=force)
        gaps = hf.snapshot_gaps(folder, wf.allow_patterns)
        if gaps:
            raise MissingWeightsError(f"{wf.repo}@{wf.revision} has no file matching {gaps}")
        return store.verified_file(entry, wf, folder, "hf-cache")
    path = hf.download_file(wf, force=force)
    sha, source = store.verify(entry, wf, path, "hf-cache", hub=info)
    return ResolvedFile(entry.id, wf.name, path, "hf-cache", sha, source, wf.repo, wf.revision,
                        hf.snapshot_commit(path), hf.is_pinned(wf.revision))

def _fetch_own(store: FetchingStore, entry: WeightEntry, wf: WeightFile, target: Path, progress: ProgressFn | None,
                  errors: list[str]) -> Path:
    """Stream URL / zip-member sources into mbench's cache: ``.partial``, size + sha256, atomic rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    attempts: list[tuple[str, Callable[[], None]]] = []
    for url in wf.urls:
        attempts.append((url, lambda url=url: fetch_url(url, partial, bind_progress(progress, entry.id, wf.name))))
    for url in wf.archive_urls:
        attempts.append((f"{url}!{wf.member or wf.name}",
                         lambda url=url: fetch_zip_member(url, wf.member or wf.name, partial,
                                                          bind_progress(progress, entry.id, wf.name))))
    for label, fetch in attempts:
        try:
            log.info("downloading %s / %s from %s", entry.id, wf.name, label)
            fetch()
            size = partial.stat().st_size
            if wf.size and size != wf.size:
                raise ValueError(f"size {size} != expected {wf.size}")
            actual = sha256_file(partial)
            if wf.sha256 and actual != wf.sha256:
                raise ValueError(f"sha256 {actual} != expected {wf.sha256}; deleted the download")
            os.replace(partial, target)  # atomic on the same file system
            store.stamps.write(target, actual, "manifest" if wf.sha256 else "first-use", label)
            if not wf.sha256:
                log.warning("weights %s / %s: no upstream sha256; recorded %s at first download",
                            entry.id, wf.name, actual)
            return target
        except Exception as e:  # noqa: BLE001 - any failure of one source moves on to the next
            errors.append(f"{label}: {type(e).__name__}: {e}")
            log.info("download of %s / %s from %s failed: %s", entry.id, wf.name, label, e)  # listed at the end
        finally:
            partial.unlink(missing_ok=True)
    raise MissingWeightsError("every source failed")


def _summary(errors: list[str]) -> str:
    """The failures of every source in one line: identical causes (no network) said once, with the count."""
    causes = [e.split(": ", 1)[1] if ": " in e and e.startswith(("http", "hf://")) else e for e in errors]
    if len(errors) > 1 and len(set(causes)) == 1:
        return f"{len(errors)} sources, each: {causes[0]}"
    return " | ".join(errors)


def remote_size(store: FetchingStore, entry: WeightEntry, wf: WeightFile, *, timeout: float = 10.0) -> int:
    """Bytes a download of ``wf`` will take, asked from its first source (0 when unknown or unreachable).

    Hub files: the Hub's metadata; direct URLs: ``Content-Length`` of a HEAD request. Used to print the total
    before ``mbench weights download`` starts; never raises.
    """
    if wf.size or store.offline:
        return wf.size
    try:
        if wf.hub and not wf.snapshot:
            return hf.hub_file_info(wf, store.hub_api).size
        if wf.urls:
            import urllib.request

            from multiid_bench._version import __version__

            req = urllib.request.Request(wf.urls[0], method="HEAD",
                                         headers={"User-Agent": f"multiid-bench/{__version__}"})
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) from manifest
                length = resp.headers.get("Content-Length")
                return int(length) if length and length.isdigit() else 0
    except Exception as e:  # noqa: BLE001 - a size is a courtesy; the download itself reports failures
        log.debug("no size for %s / %s: %s", entry.id, wf.name, e)
    return 0
