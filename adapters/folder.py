"""``folder``: images made elsewhere, read from disk so they can be scored like any model's.

Accepted layouts under ``root`` (``layout="auto"`` tries them in this order; a case matching two different
files is refused as ambiguous rather than guessed):

* ``official``: one folder per case, ``<root>/<name>/out.jpg`` (or ``out.png``), as written by WithAnyone's
  ``infer_withanyone.py``. ``<name>`` is the case id or the official basename a loader kept in
  ``case.meta`` (keys ``official_basename``, ``basename``, ``source_id``). A ``meta.json`` next to it is
  kept in the record (its prompt and seed, if any).
* ``flat``: ``<root>/<case id>.png`` (also ``.jpg``, ``.jpeg``, ``.webp``).
* ``mbench``: the output of ``mbench generate`` (``<root>/images/<case id>.png`` plus
  ``<root>/generations.jsonl``, whose record for the case becomes ``extra.source_record``).

A missing or undecodable image is a ``failed`` result with the path it looked for, never a crash.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multiid_bench.adapters.base import Adapter, Capabilities, GenerationResult
from multiid_bench.errors import ConfigError, ImageDecodeError

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case

__all__ = ["FolderAdapter", "find_image"]

log = logging.getLogger(__name__)

LAYOUTS = ("auto", "official", "flat", "mbench", "omnicontext")
_EXTS = (".png", ".jpg", ".jpeg", ".webp")
_META_KEYS = ("official_basename", "basename", "source_id")
RECORDS_FILE = "generations.jsonl"


def _names(case: "Case") -> list[str]:
    names = [case.id]
    for key in _META_KEYS:
        v = case.meta.get(key)
        if isinstance(v, str) and v and v not in names and "/" not in v and "\\" not in v:
            names.append(v)
    return names


def find_image(root: Path, case: "Case", layout: str = "auto") -> tuple[Path | None, str, list[Path]]:
    """Locate the image of ``case`` under ``root``: (path or None, layout used, every path tried)."""
    tried: list[Path] = []
    found: dict[str, Path] = {}
    names = _names(case)
    if layout in ("auto", "mbench"):
        from multiid_bench.data.case import case_file_stem  # long ids are stored hashed

        for ext in _EXTS:
            p = root / "images" / f"{case_file_stem(case.id)}{ext}"
            tried.append(p)
            if p.is_file():
                found.setdefault("mbench", p)
    if layout in ("auto", "official"):
        for name in names:
            for fn in ("out.jpg", "out.png"):
                p = root / name / fn
                tried.append(p)
                if p.is_file():
                    found.setdefault("official", p)
    if layout in ("auto", "flat"):
        for name in names:
            for ext in _EXTS:
                p = root / f"{name}{ext}"
                tried.append(p)
                if p.is_file():
                    found.setdefault("flat", p)
    task, key = case.meta.get("task_type"), case.meta.get("key")
    if layout in ("auto", "omnicontext") and isinstance(task, str) and isinstance(key, str):
        # OmniContext's own layout: results/<method>/fullset/<task_type>/<key>.png (pass the fullset folder)
        for ext in _EXTS:
            p = root / task / f"{key}{ext}"
            tried.append(p)
            if p.is_file():
                found.setdefault("omnicontext", p)
    if len(found) > 1:
        listing = ", ".join(f"{k}: {v}" for k, v in found.items())
        raise ConfigError(
            f"case {case.id!r}: images in more than one layout under {root} ({listing}); "
            f"pass layout=<{'|'.join(LAYOUTS[1:])}> to choose"
        )
    if found:
        (used, path), = found.items()
        return path, used, tried
    return None, layout, tried


class FolderAdapter(Adapter):
    """Reads pre-generated images; ``root`` is required, ``layout`` picks one of :data:`LAYOUTS`."""

    name = "folder"
    version = "1.0"
    capabilities = Capabilities(
        max_ids=4,
        native_res=(512, 512),
        licence="depends on the model that made the images",
        support_status="tested-in-ci",
        integration="builtin",
        seed_supported=False,
        defaults={"root": None, "layout": "auto"},
        description="Images made elsewhere: <case>/out.jpg (official), <case id>.png, or an mbench generate dir.",
    )

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        if not self.settings["root"]:
            raise ConfigError("adapter 'folder' needs root=<directory of images> (CLI: --images DIR or -S root=DIR)")
        if self.settings["layout"] not in LAYOUTS:
            raise ConfigError(f"adapter 'folder': layout must be one of {LAYOUTS}, got {self.settings['layout']!r}")
        self.root = Path(self.settings["root"]).expanduser()
        self.settings["root"] = str(self.root)
        self._records: dict[str, dict[str, Any]] | None = None

    def load(self, device: str = "cpu") -> None:
        self.device = device
        if not self.root.is_dir():
            raise ConfigError(f"adapter 'folder': image directory {self.root} does not exist; check --images / root=")

    def _source_records(self) -> dict[str, dict[str, Any]]:
        if self._records is None:
            self._records = {}
            path = self.root / RECORDS_FILE
            if path.is_file():
                for line in path.read_text(encoding="utf-8").splitlines():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a torn last line from a killed run
                    if isinstance(row, dict) and "case_id" in row:
                        self._records[str(row["case_id"])] = row
        return self._records

    def generate(self, case: "Case", seed: int) -> GenerationResult:
        from multiid_bench.images import load_image

        t0 = time.perf_counter()
        path, layout, tried = find_image(self.root, case, self.settings["layout"])
        if path is None:
            shown = ", ".join(str(p) for p in tried[:4]) + (" ..." if len(tried) > 4 else "")
            return GenerationResult(None, self.record(case, seed), "failed",
                                    f"no image for case {case.id!r} under {self.root} (looked for {shown})")
        extra: dict[str, Any] = {"path": str(path), "layout": layout}
        prompt = ""
        if layout == "official":
            meta_path = path.parent / "meta.json"
            if meta_path.is_file():
                try:
                    meta = json.loads(meta_path.read_text(encoding="utf-8"))
                    extra["meta"] = meta
                    prompt = str(meta.get("prompt", ""))
                except (json.JSONDecodeError, OSError) as e:
                    extra["meta_error"] = f"{meta_path}: {e}"
        source = self._source_records().get(case.id) if layout == "mbench" else None
        if source is not None:
            extra["source_record"] = source
            prompt = str(source.get("prompt", ""))
        try:
            image = load_image(path)
        except ImageDecodeError as e:
            return GenerationResult(None, self.record(case, seed, extra=extra), "failed", str(e))
        rec = self.record(case, seed, prompt=prompt, elapsed_s=time.perf_counter() - t0, output_size=image.size,
                          extra=extra)
        return GenerationResult(image, rec, "ok", None)
