"""Verified, offline-first weight files: where each lives, resolve, download, verify, preflight.

Why: no evaluation toolkit we studied checks a checksum, and a half-downloaded checkpoint surfaces as an
unreadable "PytorchStreamReader failed" deep inside a model. Every file is checked against the manifest's
sha256 (or the Hub's own LFS sha256) before it is handed out; offline (``offline=True``,
``MBENCH_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) nothing touches the network and one error lists every
missing file (:mod:`multiid_bench.weights.messages`).

Where files live (one copy each):

* Hub files (``repo`` in the manifest): the Hugging Face cache (:mod:`multiid_bench.weights.hf`), as
  ``hf_hub_download`` stores them; a copy an older mbench put in its own cache is still used.
* Other files (GitHub releases, Google Drive, zip members): mbench's cache, ``<root>/weights/<id>/<name>``,
  streamed to ``<name>.<pid>.partial``, checked, renamed atomically.
* Installed packages (MTCNN, dlib) and user files (``MBENCH_WEIGHTS_<ID>=path``, ``--weights id=path``).

Cache root precedence: ``cache_dir`` (``--cache-dir``) > ``$MBENCH_HOME`` > ``$XDG_CACHE_HOME/multiid-bench``
> ``~/.cache/multiid-bench``.
"""
from __future__ import annotations

import difflib
import importlib.util
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from multiid_bench._io import cache_root, is_offline  # cache_root re-exported
from multiid_bench.errors import ConfigError, MissingWeightsError
from multiid_bench.weights import hf
from multiid_bench.weights.download import ProgressFn
from multiid_bench.weights.fetch import fetch, gist
from multiid_bench.weights.manifest import WeightEntry, WeightFile, load_manifests
from multiid_bench.weights.messages import MissingFile, format_missing, missing_error, missing_of
from multiid_bench.weights.verify import FileStatus, ResolvedFile, Stamps, sha256_file, verify_file

__all__ = [
    "FileStatus",
    "MissingFile",
    "ProgressFn",
    "ResolvedFile",
    "WeightStore",
    "cache_root",
    "env_override_name",
    "format_missing",
    "is_offline",
    "sha256_file",
    "verify_file",
]

log = logging.getLogger(__name__)

#: Locations a file can have (``weights list``, results provenance).
LOCATIONS = ("hf-cache", "mbench-cache", "package", "override")


def env_override_name(weight_id: str) -> str:
    """``MBENCH_WEIGHTS_<ID>``: the environment variable that points a weight id at a local file."""
    return "MBENCH_WEIGHTS_" + re.sub(r"[^0-9A-Za-z]", "_", weight_id).upper()


class WeightStore:
    """Manifest entries plus a cache root; resolves ids to verified local files.

    Args:
        cache_dir: cache root override (``--cache-dir``); see :func:`cache_root`.
        offline: never download; ``None`` reads ``MBENCH_OFFLINE`` / ``HF_HUB_OFFLINE``.
        overrides: ``{weight_id: path}`` pointing ids at local files or folders (``--weights id=path``).
        manifest_dirs: folders of ``*.toml`` manifests (default: the package's ``manifests/``).
        hub_api: an ``HfApi``-like object for Hub metadata (tests pass a fake); default: a real one.
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        offline: bool | None = None,
        overrides: Mapping[str, str | os.PathLike[str]] | None = None,
        manifest_dirs: Iterable[Path] | None = None,
        hub_api: Any = None,
    ) -> None:
        self.explicit_root = bool(cache_dir)
        self.root = cache_root(cache_dir)
        self.offline = is_offline(offline)
        self.overrides = {k: Path(v).expanduser() for k, v in (overrides or {}).items()}
        self.entries: dict[str, WeightEntry] = load_manifests(manifest_dirs)
        self.hub_api = hub_api
        self.stamps = Stamps(self.root / "weights" / ".hf-verified")
        unknown = sorted(set(self.overrides) - set(self.entries))
        if unknown:
            raise ConfigError(f"--weights names unknown weight id(s) {unknown}; see `mbench weights list`.")

    # ---- lookup -------------------------------------------------------------------------------
    def entry(self, weight_id: str) -> WeightEntry:
        """The manifest entry ``weight_id``; unknown ids get a did-you-mean error."""
        if weight_id in self.entries:
            return self.entries[weight_id]
        close = difflib.get_close_matches(weight_id, list(self.entries), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown weight id {weight_id!r}.{hint} See `mbench weights list`.")

    def local(self, weight_id: str, filename: str | None = None) -> tuple[Path, str] | None:
        """``(path, location)`` of the copy that exists now (no network, no hashing), else None."""
        wf = self.entry(weight_id).file(filename)
        override = self._override_path(weight_id, wf)
        if override is not None:
            return (override, "override") if override.exists() else None
        if wf.bundled:
            p = self._package_path(wf)
            return (p, "package") if p is not None and p.is_file() else None
        if wf.hub:
            got = hf.cached_snapshot(wf) if wf.snapshot else hf.cached_file(wf)
            if got is not None:
                return got, "hf-cache"
        legacy = self.own_path(weight_id, wf)
        return (legacy, "mbench-cache") if legacy.is_file() else None

    def target_path(self, weight_id: str, filename: str | None = None) -> Path:
        """Where the file is, or where it will be once fetched (HF cache path for Hub files)."""
        wf = self.entry(weight_id).file(filename)
        found = self.local(weight_id, wf.name)
        if found is not None:
            return found[0]
        override = self._override_path(weight_id, wf)
        if override is not None:
            return override
        if wf.bundled:
            return self._package_path(wf) or self.own_path(weight_id, wf)
        if wf.hub:
            repo_dir = hf.hf_hub_cache() / f"{wf.repo_type}s--{wf.repo.replace('/', '--')}"
            return repo_dir / "snapshots" / wf.revision / ("" if wf.snapshot else (wf.filename or wf.name))
        return self.own_path(weight_id, wf)

    def fetch_command(self, weight_id: str) -> str:
        """The shell command that downloads ``weight_id`` into this store's root."""
        extra = f" --cache-dir {self.root}" if self.explicit_root else ""
        return f"mbench weights download {weight_id}{extra}"

    def expected_sha256(self, weight_id: str, filename: str | None = None) -> str:
        """The manifest hash, else the Hub's (cache etag), else the hash recorded at first download."""
        wf = self.entry(weight_id).file(filename)
        if wf.sha256:
            return wf.sha256
        found = self.local(weight_id, wf.name)
        if found is None:
            return ""
        path, location = found
        if location == "hf-cache" and hf.etag_kind(hf.blob_etag(path)) == "sha256":
            return hf.blob_etag(path)
        stamp = self.stamps.read(path, external=location == "hf-cache")
        return str(stamp.get("sha256", "")) if stamp else ""

    # ---- state --------------------------------------------------------------------------------
    def status(self, weight_id: str, *, full_hash: bool = False) -> list[FileStatus]:
        """Local state of every file of ``weight_id`` (hashing each file when ``full_hash``)."""
        entry = self.entry(weight_id)
        out = []
        for wf in entry.files:
            pinned = not wf.hub or hf.is_pinned(wf.revision)
            found = self.local(weight_id, wf.name)
            if found is None:
                out.append(FileStatus(weight_id, wf.name, self.target_path(weight_id, wf.name), "missing",
                                      location="missing", size=wf.size, pinned=pinned))
                continue
            path, location = found
            size = _size(path)
            try:
                if wf.snapshot:  # a folder: each file against its blob's hash when asked to hash (verify)
                    if full_hash:
                        self._verify_snapshot(entry, wf, path)
                    out.append(FileStatus(weight_id, wf.name, path, "ok", location=location, size=size, pinned=pinned))
                    continue
                sha, source = self.verify(entry, wf, path, location, rehash=full_hash)
            except MissingWeightsError as e:
                out.append(FileStatus(weight_id, wf.name, path, "corrupt", detail=str(e).split(": ", 1)[-1],
                                      location=location, size=size, pinned=pinned))
                continue
            state = "unverified" if source == "first-use" else "ok"
            out.append(FileStatus(weight_id, wf.name, path, state, sha, source, location, size, pinned))
        return out

    def preflight(self, weight_ids: Iterable[str]) -> list[MissingFile]:
        """Every file of ``weight_ids`` not present locally (existence check; no download, no load)."""
        missing: list[MissingFile] = []
        for wid in dict.fromkeys(weight_ids):
            entry = self.entry(wid)
            for wf in entry.files:
                if self.local(wid, wf.name) is None:
                    missing.append(self.missing_file(entry, wf, self._absent_reason(wid, wf)))
        return missing

    def ensure(self, weight_ids: Iterable[str], *, progress: ProgressFn | None = None,
               profile: str | None = None, what: str | None = None) -> None:
        """Make every file of ``weight_ids`` available, or raise ONE error listing all that are not."""
        ids = list(weight_ids)
        missing = self.preflight(ids)
        if not missing:
            return
        if self.offline:
            raise self.error_for(missing, offline=True, profile=profile, what=what)
        failed: list[MissingFile] = []
        for m in missing:
            try:
                self.resolve(m.weight_id, m.name, progress=progress)
            except MissingWeightsError as e:
                listed = missing_of(e)
                failed.append(listed[0] if listed else _with_reason(m, f"download failed: {gist(e)}"))
        if failed:
            raise self.error_for(failed, header="could not fetch", profile=profile, what=what)

    # ---- resolve / download -------------------------------------------------------------------
    def resolve(self, weight_id: str, filename: str | None = None, *, progress: ProgressFn | None = None) -> Path:
        """Local verified path of a weight file (a folder for ``allow_patterns`` entries), downloading when allowed.

        Raises:
            MissingWeightsError: absent and offline, download failed, checksum mismatch, or an
                override / bundled file that does not match the manifest hash.
        """
        return self.resolve_file(weight_id, filename, progress=progress).path

    def resolve_file(self, weight_id: str, filename: str | None = None, *, progress: ProgressFn | None = None,
                     force: bool = False) -> ResolvedFile:
        """Like :meth:`resolve`, with provenance: path, location, verified sha256 and its source, commit."""
        entry = self.entry(weight_id)
        wf = entry.file(filename)
        found = None if force else self.local(weight_id, wf.name)
        if found is not None:
            path, location = found
            try:
                return self.verified_file(entry, wf, path, location)
            except MissingWeightsError as e:
                if self.offline or location in ("override", "package"):
                    raise
                log.warning("%s; downloading it again", e)
                force = location == "hf-cache"
        if self._override_path(weight_id, wf) is not None or wf.bundled:
            raise self.error_for([self.missing_file(entry, wf, self._absent_reason(weight_id, wf))])
        if self.offline:
            raise self.error_for([self.missing_file(entry, wf, "not downloaded")], offline=True)
        return self._download(entry, wf, progress, force=force)

    def download(self, weight_id: str, *, force: bool = False, progress: ProgressFn | None = None) -> list[Path]:
        """Download (or re-verify) every file of ``weight_id``; ``force`` fetches again."""
        entry = self.entry(weight_id)
        paths = []
        for wf in entry.files:
            own = self.own_path(weight_id, wf)
            mine = not wf.bundled and self._override_path(weight_id, wf) is None
            if force and mine and own.exists():
                own.unlink()
                self.stamps.remove(own)
            paths.append(self.resolve_file(weight_id, wf.name, progress=progress, force=force and mine).path)
        return paths

    def provenance(self, weight_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``{"<id>/<file>": {...}}`` for results: what is on disk now (no download; missing files say so)."""
        out: dict[str, dict[str, Any]] = {}
        for wid in dict.fromkeys(weight_ids):
            entry = self.entry(wid)
            for wf in entry.files:
                key = f"{wid}/{wf.name}"
                found = self.local(wid, wf.name)
                try:
                    out[key] = self.verified_file(entry, wf, *found).to_dict() if found else {
                        "location": "missing", "sha256": wf.sha256 or None}
                except MissingWeightsError as e:
                    out[key] = {"location": found[1] if found else "missing", "corrupt": gist(e)}
        return out

    # ---- verification (public: the fetcher, ``weights/fetch.py``, verifies what it downloads) ----------
    def verified_file(self, entry: WeightEntry, wf: WeightFile, path: Path, location: str) -> ResolvedFile:
        """``path`` (a file or a Hub snapshot folder) checked against its expected hash, as a ResolvedFile."""
        if wf.snapshot:
            self._verify_snapshot(entry, wf, path)
            sha, source = "", ""
        else:
            sha, source = self.verify(entry, wf, path, location)
        commit = hf.snapshot_commit(path) if location == "hf-cache" else None
        return ResolvedFile(entry.id, wf.name, path, location, sha, source, wf.repo, wf.revision if wf.hub else "",
                            commit, not wf.hub or hf.is_pinned(wf.revision))

    def verify(self, entry: WeightEntry, wf: WeightFile, path: Path, location: str, *,
                rehash: bool = False, hub: hf.HubFileInfo | None = None) -> tuple[str, str]:
        """``(sha256, where the expected hash came from)``; raises when the file does not match.

        A valid verification stamp stands in for hashing again unless ``rehash`` (``weights verify``).
        """
        external = location == "hf-cache"
        if wf.size and path.stat().st_size != wf.size:
            self._refuse(entry, wf, path, f"size {path.stat().st_size} != expected {wf.size}", location)
        etag = hf.blob_etag(path) if external else ""
        kind = hf.etag_kind(etag)
        expected, source = wf.sha256, "manifest"
        if not expected and hub is not None and hub.sha256:
            expected, source = hub.sha256, "hub-lfs"
        if not expected and kind == "sha256":
            expected, source = etag, "hf-cache-etag"
        if not expected and (hub is not None or kind == "git-sha1"):
            git_expected = hub.blob_id if hub is not None else etag
            actual_git = hf.git_blob_sha1(path)
            if actual_git != git_expected:
                self._refuse(entry, wf, path, f"git blob id {actual_git} != Hub's {git_expected}", location)
            return sha256_file(path), "git-sha1"
        if not expected:  # no hash anywhere: trust on first use, recorded
            stamp = self.stamps.read(path, external=external)
            if stamp and stamp.get("sha256"):
                expected, source = str(stamp["sha256"]), "first-use"
            else:
                actual = sha256_file(path)
                if location not in ("override", "package"):
                    log.warning("weights %s / %s: no published sha256; recording %s for %s",
                                entry.id, wf.name, actual, path)
                    self.stamps.write(path, actual, "first-use", str(path), external=external)
                return actual, "first-use"
        if not rehash and self.stamps.matches(path, expected, external=external):
            return expected, source
        actual = sha256_file(path)
        if actual != expected:
            self._refuse(entry, wf, path, f"sha256 {actual}, expected {expected}", location)
        if location not in ("override", "package"):  # hashed now: the next look needs no re-hash
            self.stamps.write(path, actual, source, str(path), external=external)
        return actual, source

    def _verify_snapshot(self, entry: WeightEntry, wf: WeightFile, folder: Path) -> None:
        """Every file of a cached folder against the hash its blob is named by (sha256 or git sha1)."""
        for f in sorted(p for p in folder.rglob("*") if p.is_file()):
            etag = hf.blob_etag(f)
            kind = hf.etag_kind(etag)
            if kind == "sha256" and not self.stamps.matches(f, etag, external=True):
                actual = sha256_file(f)
                if actual != etag:
                    self._refuse(entry, wf, f, f"sha256 {actual}, expected {etag}", "hf-cache")
                self.stamps.write(f, actual, "hf-cache-etag", str(f), external=True)
            elif kind == "git-sha1" and hf.git_blob_sha1(f) != etag:
                self._refuse(entry, wf, f, f"git blob id differs from {etag}", "hf-cache")

    def _refuse(self, entry: WeightEntry, wf: WeightFile, path: Path, why: str, location: str) -> None:
        deleted = location == "mbench-cache"
        if deleted:
            path.unlink(missing_ok=True)
            self.stamps.remove(path)
        fix = (f"`mbench weights download --force {entry.id}`" if location in ("mbench-cache", "hf-cache")
               else "point it at the right file")
        raise MissingWeightsError(
            f"weights {entry.id} / {wf.name}: {path} has {why} (corrupt, partial or a different version)"
            f"{'; deleted it' if deleted else ''}. Fix: {fix}."
        )

    # ---- downloads ----------------------------------------------------------------------------
    def _download(self, entry: WeightEntry, wf: WeightFile, progress: ProgressFn | None, *,
                  force: bool) -> ResolvedFile:
        return fetch(self, entry, wf, progress, force=force)

    # ---- internals ----------------------------------------------------------------------------
    def own_path(self, weight_id: str, wf: WeightFile) -> Path:
        """Where mbench's own cache keeps ``wf`` of ``weight_id`` (the fetcher downloads URL sources there)."""
        return self.root / "weights" / weight_id / wf.name

    def _override_path(self, weight_id: str, wf: WeightFile) -> Path | None:
        raw = self.overrides.get(weight_id) or os.environ.get(env_override_name(weight_id))
        if not raw:
            return None
        p = Path(raw).expanduser()
        return p / wf.name if p.is_dir() and not wf.snapshot else p

    @staticmethod
    def _package_path(wf: WeightFile) -> Path | None:
        # find_spec locates the package without importing it (face_recognition_models' __init__
        # imports pkg_resources, which recent setuptools no longer ships).
        try:
            spec = importlib.util.find_spec(wf.package)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations))) / wf.package_path

    def _absent_reason(self, weight_id: str, wf: WeightFile) -> str:
        if self._override_path(weight_id, wf) is not None:
            return f"{env_override_name(weight_id)} / --weights points at a path that does not exist"
        if wf.bundled:
            return f"ships with the PyPI package {wf.package!r}: pip install {wf.package}"
        return "not downloaded"

    def error_for(self, missing: list[MissingFile], **kwargs: Any) -> Exception:
        """The one missing-weights error for ``missing``, naming this store's ``--cache-dir`` when one was given."""
        return missing_error(missing, cache_dir=str(self.root) if self.explicit_root else None, **kwargs)

    def missing_file(self, entry: WeightEntry, wf: WeightFile, reason: str) -> MissingFile:
        """``wf`` of ``entry`` as one line of the missing-weights message: where it goes, how to get it, why."""
        return MissingFile(entry.id, wf.name, self.target_path(entry.id, wf.name), self.fetch_command(entry.id),
                           env_override_name(entry.id), tuple(wf.sources()), reason, wf.size, entry.used_by)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _with_reason(m: MissingFile, reason: str) -> MissingFile:
    from dataclasses import replace

    return replace(m, reason=reason)
