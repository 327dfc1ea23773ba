"""Weight manifests: the single source of truth for every model file the toolkit may load.

Every ``manifests/*.toml`` next to this module is read and merged, so each area owns its own file
(``faces.toml``, ``scorers.toml``, ``reference_model.toml``) and a new file is picked up with no code
change. An entry is a ``[[weights]]`` table::

    [[weights]]
    id = "arcface-w600k-r50"
    description = "..."
    licence = "..."
    used_by = ["faces.arcface.w600k_r50"]
    files = [
      { name = "w600k_r50.onnx", size = 0, sha256 = "<64 hex>",
        urls = ["https://mirror/w600k_r50.onnx"],             # direct downloads, tried in order
        repo = "owner/name", filename = "path/in/repo",       # or a Hugging Face file
        revision = "main", repo_type = "model",
        archive_urls = ["https://.../pack.zip"], member = "w600k_r50.onnx",   # or a zip member
        package = "facenet_pytorch", package_path = "data/onet.pt" },        # or a file an installed
    ]                                                                          # package ships

A Hub file (``repo``) lives in the Hugging Face cache, not in mbench's; its ``revision`` must be a commit
(``mbench weights pin`` fills commits, sizes and the Hub's LFS sha256). A file with ``allow_patterns`` is a
whole folder (a diffusers model): ``snapshot_download(allow_patterns=...)`` of ``repo`` at ``revision``.

``sha256 = ""`` is allowed only with a ``sha256_note`` saying why (upstream publishes none); such a file
is hashed on first download and the hash recorded locally (trust on first use, reported as such).
"""
from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiid_bench.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["MANIFEST_DIR", "WeightEntry", "WeightFile", "load_manifests"]

MANIFEST_DIR = Path(__file__).resolve().parent / "manifests"

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_ENTRY_KEYS = {"id", "description", "licence", "used_by", "files", "homepage", "notes"}
_FILE_KEYS = {
    "name", "size", "sha256", "sha256_note", "urls", "repo", "filename", "revision", "repo_type",
    "archive_urls", "member", "package", "package_path", "allow_patterns",
}


@dataclass(frozen=True)
class WeightFile:
    """One file of a weight entry and every place it can come from."""

    name: str
    sha256: str = ""
    sha256_note: str = ""
    size: int = 0
    urls: tuple[str, ...] = ()
    repo: str = ""
    filename: str = ""
    revision: str = "main"
    repo_type: str = "model"
    archive_urls: tuple[str, ...] = ()
    member: str = ""
    package: str = ""
    package_path: str = ""
    allow_patterns: tuple[str, ...] = ()

    @property
    def hub(self) -> bool:
        """True for a Hugging Face file or folder: it lives in the HF cache (never copied into mbench's)."""
        return bool(self.repo)

    @property
    def snapshot(self) -> bool:
        """True for a folder entry (``allow_patterns``), resolved with ``snapshot_download``."""
        return bool(self.allow_patterns)

    @property
    def bundled(self) -> bool:
        """True when an installed PyPI package ships the file (no download, works offline)."""
        return bool(self.package)

    def sources(self) -> list[str]:
        """Human-readable list of sources, in the order they are tried."""
        out: list[str] = []
        if self.package:
            out.append(f"installed package {self.package}: {self.package_path}")
        if self.repo and self.allow_patterns:
            out.append(f"https://huggingface.co/{self.repo}/tree/{self.revision} ({', '.join(self.allow_patterns)})")
        elif self.repo:
            out.append(f"https://huggingface.co/{self.repo}/blob/{self.revision}/{self.filename or self.name}")
        out.extend(self.urls)
        out.extend(f"{u} (zip member {self.member or self.name})" for u in self.archive_urls)
        return out


@dataclass(frozen=True)
class WeightEntry:
    """A named set of files (usually one) that one model needs."""

    id: str
    description: str
    licence: str
    used_by: tuple[str, ...]
    files: tuple[WeightFile, ...]
    homepage: str = ""
    notes: str = ""
    source: str = ""  # the manifest file this entry came from

    def file(self, filename: str | None = None) -> WeightFile:
        """The file called ``filename`` (or the only file when None)."""
        if filename is None:
            if len(self.files) == 1:
                return self.files[0]
            raise ConfigError(
                f"weights {self.id!r} has {len(self.files)} files "
                f"({', '.join(f.name for f in self.files)}); name the one you need."
            )
        for f in self.files:
            if f.name == filename:
                return f
        raise ConfigError(
            f"weights {self.id!r} has no file {filename!r}; it has: {', '.join(f.name for f in self.files)}."
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (for `mbench weights list --json`)."""
        return {
            "id": self.id,
            "description": self.description,
            "licence": self.licence,
            "used_by": list(self.used_by),
            "manifest": self.source,
            "files": [
                {"name": f.name, "size": f.size, "sha256": f.sha256, "sha256_note": f.sha256_note,
                 "bundled": f.bundled, "sources": f.sources(),
                 **({"repo": f.repo, "revision": f.revision} if f.hub else {})}
                for f in self.files
            ],
        }


def _str_tuple(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}.")
    return tuple(value)


def _parse_file(raw: Mapping[str, Any], where: str) -> WeightFile:
    unknown = set(raw) - _FILE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_FILE_KEYS)}.")
    name = raw.get("name")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ConfigError(f"{where}: 'name' must be a plain file name, got {name!r}.")
    sha = str(raw.get("sha256", "")).lower()
    if sha and not _HEX64.match(sha):
        raise ConfigError(f"{where} ({name}): sha256 must be 64 hex digits, got {sha!r}.")
    note = str(raw.get("sha256_note", ""))
    if not sha and not note:
        raise ConfigError(
            f"{where} ({name}): sha256 is empty; give the upstream hash, or explain in 'sha256_note' "
            "why upstream publishes none."
        )
    wf = WeightFile(
        name=name,
        sha256=sha,
        sha256_note=note,
        size=int(raw.get("size", 0) or 0),
        urls=_str_tuple(raw.get("urls", []), f"{where} ({name}).urls"),
        repo=str(raw.get("repo", "")),
        filename=str(raw.get("filename", "")),
        revision=str(raw.get("revision", "main")),
        repo_type=str(raw.get("repo_type", "model")),
        archive_urls=_str_tuple(raw.get("archive_urls", []), f"{where} ({name}).archive_urls"),
        member=str(raw.get("member", "")),
        package=str(raw.get("package", "")),
        package_path=str(raw.get("package_path", "")),
        allow_patterns=_str_tuple(raw.get("allow_patterns", []), f"{where} ({name}).allow_patterns"),
    )
    if wf.allow_patterns and not (wf.repo and not wf.sha256 and not (wf.urls or wf.archive_urls or wf.package)):
        raise ConfigError(f"{where} ({name}): 'allow_patterns' (a Hub folder) needs 'repo' only, and sha256 = \"\" "
                          "(each file is checked against the Hub's own hash).")
    if not (wf.urls or wf.repo or wf.archive_urls or wf.package):
        raise ConfigError(f"{where} ({name}): no source; give urls, repo, archive_urls or package.")
    if wf.package and not wf.package_path:
        raise ConfigError(f"{where} ({name}): 'package' needs 'package_path'.")
    return wf


def _parse_entry(raw: Mapping[str, Any], source: Path, index: int) -> WeightEntry:
    where = f"{source.name} [[weights]] #{index + 1}"
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_ENTRY_KEYS)}.")
    wid = raw.get("id")
    if not isinstance(wid, str) or not _ID.match(wid):
        raise ConfigError(f"{where}: 'id' must be lower-case letters, digits, '.', '_' or '-', got {wid!r}.")
    where = f"{source.name} weights {wid!r}"
    files_raw = raw.get("files")
    if not isinstance(files_raw, list) or not files_raw:
        raise ConfigError(f"{where}: 'files' must be a non-empty list of tables.")
    files = tuple(_parse_file(f, where) for f in files_raw)
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: duplicate file names {names}.")
    for key in ("description", "licence"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ConfigError(f"{where}: '{key}' is required (a non-empty string).")
    return WeightEntry(
        id=wid,
        description=raw["description"],
        licence=raw["licence"],
        used_by=_str_tuple(raw.get("used_by", []), f"{where}.used_by"),
        files=files,
        homepage=str(raw.get("homepage", "")),
        notes=str(raw.get("notes", "")),
        source=str(source),
    )


def load_manifests(dirs: Iterable[Path] | None = None) -> dict[str, WeightEntry]:
    """Read and merge every ``*.toml`` in ``dirs`` (default: the package's ``manifests/``), sorted by name.

    Raises:
        ConfigError: unreadable TOML, a malformed entry, or an id defined twice (both files named).
    """
    entries: dict[str, WeightEntry] = {}
    for d in (list(dirs) if dirs is not None else [MANIFEST_DIR]):
        for path in sorted(Path(d).glob("*.toml")):
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as e:
                raise ConfigError(f"weights manifest {path} cannot be read: {e}") from e
            items = data.get("weights", [])
            if not isinstance(items, list):
                raise ConfigError(f"weights manifest {path}: 'weights' must be an array of tables ([[weights]]).")
            for i, raw in enumerate(items):
                entry = _parse_entry(raw, path, i)
                if entry.id in entries:
                    raise ConfigError(
                        f"weights id {entry.id!r} is defined twice: in {entries[entry.id].source} and {path}. "
                        "Rename one of them."
                    )
                entries[entry.id] = entry
    return entries
