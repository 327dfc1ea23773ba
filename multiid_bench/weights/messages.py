"""The one missing-weights message: one line per missing file, then the fixes, once.

Why: the same five missing files used to print as 77 lines of nested repetitions, with counts that did not
match the lines and no mention of the offline profile. Every caller (evaluate, score, generate, faces,
doctor, train, the Python API) now builds its ``MissingWeightsError`` here, and the error carries the
structured list (``error.missing``) so callers merge lists instead of pasting messages into messages.

Layout (the header never ends with ':' so a one-line summary of the error stays truthful)::

    5 model weight files missing for profile 'paper' (offline; sizes not in the manifests)
      insightface-buffalo-l / det_10g.onnx  16.9 MB  from github.com/deepinsight/insightface (zip)
      ...
    fix, one of:
      download:    mbench weights download --profile paper   (needs network)
      no download: rerun with --profile offline (MTCNN + dlib, shipped with pip packages)
      by hand:     put each file where `mbench weights path ID` says, or set MBENCH_WEIGHTS_<ID>=/path
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from multiid_bench.errors import MissingDataError, MissingWeightsError

__all__ = ["MissingFile", "format_missing", "human_size", "missing_error", "missing_of"]


def human_size(n: int) -> str:
    """``16.9 MB`` style (decimal units, as the Hub and browsers show them); '?' when unknown (0)."""
    if n <= 0:
        return "size ?"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    raise AssertionError  # pragma: no cover


@dataclass(frozen=True)
class MissingFile:
    """A weight file (or data path) that is not available locally, with where it would come from.

    ``kind`` is ``weights`` (fetchable with ``mbench weights download``) or ``data`` (a path the user
    provides: training records, a reference bank, a local model folder).
    """

    weight_id: str
    name: str
    target: Path
    command: str
    env_var: str
    sources: tuple[str, ...]
    reason: str = "not downloaded"
    size: int = 0
    used_by: tuple[str, ...] = ()
    kind: str = "weights"

    def source_label(self) -> str:
        """Where the file would come from, in a few words (first source; host and repo only)."""
        if not self.sources:
            return "you provide it"
        first = self.sources[0]
        if first.startswith("installed package"):
            return first.split(":")[0].replace("installed package", "pip package")
        if first.startswith("https://huggingface.co/"):
            parts = urlparse(first.split(" ")[0]).path.strip("/").split("/")
            rev = parts[3] if len(parts) > 3 else ""
            return f"hf.co/{parts[0]}/{parts[1]}" + (f"@{rev[:8]}" if rev else "")
        url = urlparse(first.split(" ")[0])
        path = "/".join(url.path.strip("/").split("/")[:2])
        zip_note = " (zip)" if "(zip member" in first else ""
        return f"{url.netloc}/{path}{zip_note}" if "google" not in url.netloc else "Google Drive"

    def line(self) -> str:
        """The one line this file gets in the message."""
        reason = "" if self.reason in ("not downloaded", "") else f"  [{self.reason}]"
        if self.kind == "data":
            return f"  {self.weight_id}: {self.target}{reason or '  [not found]'}"
        return f"  {self.weight_id} / {self.name}  {human_size(self.size)}  from {self.source_label()}{reason}"

    def describe(self) -> str:
        """Same as :meth:`line` (kept for callers of the earlier multi-line form)."""
        return self.line()


def _download_command(items: Sequence[MissingFile], profile: str | None, cache_dir: str | None) -> str:
    extra = f" --cache-dir {cache_dir}" if cache_dir else ""
    if profile:
        return f"mbench weights download --profile {profile}{extra}"
    ids = list(dict.fromkeys(m.weight_id for m in items))
    return f"mbench weights download {' '.join(ids)}{extra}"


def format_missing(
    missing: Iterable[MissingFile],
    *,
    header: str | None = None,
    profile: str | None = None,
    offline: bool | None = None,
    cache_dir: str | None = None,
    what: str | None = None,
) -> str:
    """The message for a list of missing files (weights and, for training, data paths).

    Args:
        header: context instead of the default (e.g. ``could not fetch``); the counts are added here.
        profile: the face profile that needs them (the download command then uses ``--profile``).
        offline: say that downloads were disabled.
        cache_dir: an explicit ``--cache-dir`` to repeat in the command.
        what: who needs the files (``training``, ``scorer clip``), shown in the header.
    """
    items = list(dict.fromkeys(missing))
    weights = [m for m in items if m.kind == "weights"]
    data = [m for m in items if m.kind == "data"]
    counts = []
    if weights:
        counts.append(f"{len(weights)} model weight file{'s' if len(weights) != 1 else ''}")
    if data:
        counts.append(f"{len(data)} data path{'s' if len(data) != 1 else ''}")
    subject = " and ".join(counts) or "nothing"
    needed = f" for profile {profile!r}" if profile else (f" for {what}" if what else "")
    known = [m.size for m in weights if m.size > 0]
    notes = []
    if offline:
        notes.append("offline")
    if weights:
        if len(known) == len(weights):
            notes.append(f"{human_size(sum(known))} in all")
        elif known:
            unknown = len(weights) - len(known)
            notes.append(f"{human_size(sum(known))} + {unknown} file{'s' if unknown != 1 else ''} of unknown size")
        else:
            notes.append("sizes not in the manifests")
    head = f"{header}: " if header else ""
    lines = [f"{head}{subject} missing{needed} ({'; '.join(notes)})" if notes else f"{head}{subject} missing{needed}"]
    lines += [m.line() for m in weights] + [m.line() for m in data]
    lines.append("fix, one of:" if weights and not data else "fix:")
    if weights:
        lines.append(f"  download:    {_download_command(weights, profile, cache_dir)}   (needs network"
                     + ("; unset MBENCH_OFFLINE/HF_HUB_OFFLINE or drop --offline" if offline else "") + ")")
        faces = any(u.startswith("faces.") for m in weights for u in m.used_by)
        if (profile and profile != "offline") or (profile is None and what is None and faces):
            lines.append("  no download: rerun with --profile offline (MTCNN + dlib, shipped with pip packages)")
        lines.append("  by hand:     put each file where `mbench weights path ID` says (Hub files: "
                     "`hf download REPO FILE --revision COMMIT`), or set MBENCH_WEIGHTS_<ID>=/path/to/file")
    if data:
        lines.append("  data:        create the paths above or point the config at your copies "
                     "(a reference bank: `mbench train build-bank`)")
    return "\n".join(lines)


def missing_error(missing: Iterable[MissingFile], **kwargs: object) -> MissingWeightsError | MissingDataError:
    """The exception for ``missing`` (exit 3), with the list attached as ``.missing`` for merging."""
    items = tuple(dict.fromkeys(missing))
    cls = MissingWeightsError if any(m.kind == "weights" for m in items) else MissingDataError
    err = cls(format_missing(items, **kwargs))  # type: ignore[arg-type]
    err.missing = items  # type: ignore[attr-defined]
    return err


def missing_of(error: BaseException) -> tuple[MissingFile, ...]:
    """The structured list an error from :func:`missing_error` carries (empty for other errors)."""
    return tuple(getattr(error, "missing", ()) or ())
