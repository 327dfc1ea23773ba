"""The official evaluation folder layout (eval-protocol §1.3): export to it and import from it.

``<out_dir>/<case>/``: ``out.jpg`` (generated), ``ori.jpg`` (GT), ``ref_0.jpg`` ... ``ref_{n-1}.jpg`` (the
references the generator was fed), ``meta.json`` (the official scripts read only ``"prompt"``).

Export writes JPEG: a source that already is a JPEG is copied byte for byte (no extra re-encode); anything
else is encoded at quality 75, PIL's default, as ``infer_withanyone.py`` does. ``meta.json`` also carries an
``"mbench"`` block (case id, subset, boxes, ref mode, source bench hash) so an import restores the case
exactly; folders written by the official scripts lack it and are read from their files alone.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from multiid_bench.data._store import atomic_write_bytes, atomic_write_text
from multiid_bench.data.case import Bench, Case, subset_for_persons
from multiid_bench.data.records import BenchLoad, InvalidRecord, RecordError, regularise
from multiid_bench.errors import BadInputError, MissingDataError

__all__ = ["ExportSummary", "export_official", "import_official", "import_official_checked"]

log = logging.getLogger(__name__)

_REF = re.compile(r"^ref_(\d)\.(jpe?g|png|webp)$", re.IGNORECASE)
_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp")
_OFFICIAL_QUALITY = 75


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: the folder, the cases with a generated image, and those without one."""

    out_dir: Path
    exported: tuple[str, ...]
    missing_images: tuple[str, ...]


def _jpeg_bytes(src: Path | Any) -> bytes:
    """JPEG bytes for a path (copied if already JPEG) or a PIL image (encoded at quality 75)."""
    import io

    from PIL import Image

    if isinstance(src, (str, Path)):
        data = Path(src).read_bytes()
        if data[:3] == b"\xff\xd8\xff":
            return data
        from multiid_bench.images import decode_bytes

        img = decode_bytes(data, str(src))
    elif isinstance(src, Image.Image):
        img = src.convert("RGB")
    else:
        raise BadInputError(f"expected an image path or a PIL image, got {type(src).__name__}")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=_OFFICIAL_QUALITY)
    return buf.getvalue()


def _find_generated(images: Path, case_id: str) -> Path | None:
    for cand in [images / f"{case_id}{e}" for e in _IMAGE_EXTS] + [images / case_id / f"out{e}" for e in _IMAGE_EXTS]:
        if cand.is_file():
            return cand
    return None


def export_official(
    bench: Bench, images: str | Path | Mapping[str, Any] | None, out_dir: str | Path
) -> ExportSummary:
    """Write ``bench`` (plus generated images) in the official layout.

    Args:
        bench: cases; their ``refs`` are written as ``ref_k.jpg`` (prepare crops first to match the paper).
        images: a folder holding ``<case_id>.png|jpg|webp`` (or ``<case_id>/out.*``), a mapping
            case id -> path or PIL image, or ``None`` to write only GT, references and meta.
        out_dir: destination; existing case folders are overwritten.

    Raises:
        BadInputError: a case has no GT (``ori.jpg`` is required by the official evaluator).
    """
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    exported, missing = [], []
    for case in bench.cases:
        if case.gt is None:
            raise BadInputError(f"case {case.id!r}: field 'gt' is empty; the official layout needs ori.jpg")
        if isinstance(images, Mapping):
            gen = images.get(case.id)
        elif images is not None:
            gen = _find_generated(Path(images).expanduser(), case.id)
        else:
            gen = None
        folder = out / case.id
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        atomic_write_bytes(folder / "ori.jpg", _jpeg_bytes(case.gt))
        for k, ref in enumerate(case.refs):
            atomic_write_bytes(folder / f"ref_{k}.jpg", _jpeg_bytes(ref))
        if gen is not None:
            atomic_write_bytes(folder / "out.jpg", _jpeg_bytes(gen))
            exported.append(case.id)
        elif images is not None:
            missing.append(case.id)
        meta = {
            "prompt": case.prompt,
            "mbench": {
                "id": case.id, "subset": case.subset, "num_persons": case.num_persons,
                "boxes": [list(b) for b in case.boxes], "ref_mode": str(case.meta.get("ref_mode", "raw_refs")),
                "bench_id": bench.id, "bench_manifest_sha256": bench.manifest_sha256,
                "meta": _jsonable(dict(case.meta)),
            },
        }
        atomic_write_text(folder / "meta.json", json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False))
    if missing:
        log.warning("%d case(s) have no generated image and no out.jpg: %s", len(missing), ", ".join(missing[:10]))
    return ExportSummary(out_dir=out, exported=tuple(exported), missing_images=tuple(missing))


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def import_official_checked(folder: Path) -> BenchLoad:
    """Read an official folder into cases (``BenchLoad``, broken case folders listed, not raised)."""
    loaded, _ = _import(folder)
    return loaded


def import_official(folder: str | Path) -> tuple[Bench, dict[str, Path]]:
    """Read an official folder; return the bench and ``{case id: out.jpg path}`` for cases that have one.

    Raises:
        MissingDataError: the folder does not exist.
        BadInputError: a case folder is broken (bad ``meta.json``, no references); the message names it.
    """
    loaded, generated = _import(Path(folder).expanduser())
    if loaded.invalid:
        raise BadInputError("\n".join(r.message for r in loaded.invalid[:10]))
    return loaded.bench, generated


def _import(folder: Path) -> tuple[BenchLoad, dict[str, Path]]:
    if not folder.is_dir():
        raise MissingDataError(f"official evaluation folder {folder} does not exist. Check the path.")
    cases: list[Case] = []
    invalid: list[InvalidRecord] = []
    generated: dict[str, Path] = {}
    bench_ids: set[str] = set()
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):  # sorted: the official os.listdir order is not
        src = str(sub)
        meta_path = sub / "meta.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            invalid.append(InvalidRecord(src, sub.name, "meta.json", "missing (every case folder needs one)"))
            continue
        except (OSError, ValueError) as e:
            invalid.append(InvalidRecord(src, sub.name, "meta.json", f"unreadable JSON ({e})"))
            continue
        if not isinstance(meta, dict):
            invalid.append(InvalidRecord(src, sub.name, "meta.json", "must be a JSON object"))
            continue
        ours = meta.get("mbench") if isinstance(meta.get("mbench"), dict) else {}
        case_id = str(ours.get("id") or sub.name)
        refs = sorted((int(m.group(1)), sub / m.group(0)) for f in sub.iterdir() if (m := _REF.match(f.name)))
        if not refs:
            invalid.append(InvalidRecord(src, case_id, "ref_k.jpg", "no reference images (ref_0.jpg ...)"))
            continue
        prompt = meta.get("prompt", meta.get("caption_en"))
        if not isinstance(prompt, str):
            invalid.append(InvalidRecord(src, case_id, "meta.json:prompt", f"missing or not a string: {prompt!r}"))
            continue
        gt = sub / "ori.jpg" if (sub / "ori.jpg").is_file() else None
        declared = ours.get("num_persons")
        subset = ours.get("subset") or _subset(sub.name, min(int(declared or len(refs)), 4))
        case_meta = dict(ours.get("meta") or {})
        case_meta.update({"ref_mode": ours.get("ref_mode", "prepared_crops"), "official_folder": sub.name})
        try:
            # the official evaluator reads ref_0..ref_3 (p3) or fewer, whatever else the folder holds
            ref_paths, boxes, n, irregular = regularise(subset, [p for _, p in refs], list(ours.get("boxes") or ()),
                                                        declared)
            if irregular:
                case_meta["irregular"] = irregular
            case = Case(id=case_id, subset=subset, prompt=prompt, gt=gt,  # type: ignore[arg-type]
                        refs=tuple(ref_paths), boxes=tuple(tuple(b) for b in boxes), num_persons=n, meta=case_meta)
        except RecordError as e:
            invalid.append(InvalidRecord(src, case_id, f"ref_k.jpg ({e.field})", str(e)))
            continue
        except BadInputError as e:
            invalid.append(InvalidRecord(src, case_id, "meta.json:mbench", str(e)))
            continue
        if (sub / "out.jpg").is_file():
            generated[case.id] = sub / "out.jpg"
        if ours.get("bench_id"):
            bench_ids.add(str(ours["bench_id"]))
        cases.append(case)
    if not cases and not invalid:
        raise BadInputError(f"{folder} has no case folders (<case>/meta.json, ori.jpg, ref_0.jpg).")
    bench_id = bench_ids.pop() if len(bench_ids) == 1 else folder.name
    from multiid_bench.data.refcrop import reference_mode

    bench = Bench(id=bench_id, root=folder, cases=tuple(cases))
    return BenchLoad(bench=bench, invalid=tuple(invalid), kind="official", ref_mode=reference_mode(bench),
                     extra={"generated": {k: str(v) for k, v in generated.items()}}), generated


def _subset(name: str, n: int) -> str:
    """Official p3 folders are ``num_3_NNNN`` / ``num_4_NNNN``; otherwise the person count decides."""
    if name.startswith(("num_3_", "num_4_")):
        return "p3"
    return subset_for_persons(n)
