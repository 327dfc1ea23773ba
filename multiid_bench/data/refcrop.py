"""Reference face crops as the generator saw them, and the 1.5x black padding the scorer applies.

Why: the paper's Sim(Ref) and copy-paste do not compare against the dataset's raw ``input_images`` but
against the tight square face crops the WithAnyone inference script fed the model (eval-protocol §1.3,
§8 item 1): the highest-score detected face, its box made square by growing the shorter side
symmetrically (integer maths on the truncated box), clipped to the image (so it can turn non-square at a
border), cropped with no margin, resized to 512x512 with LANCZOS and saved as JPEG quality 75. At scoring
time every reference is then centred on a black square canvas of side ``int(1.5 * max(w, h))`` (§3.1).

Crops are deterministic and cached on disk, keyed by (reference sha256, detector id and config, crop
version, size, JPEG quality). A prepared bench records its mode in every case's ``meta`` (``ref_mode``,
``raw_refs``, ``ref_crop``); :func:`reference_info` summarises it for ``results.json``.

A cached crop is used only after a check: its entry records the sha256 of the crop file, and a crop that is
missing, unreadable or has other bytes (deleted, swapped, damaged) is recomputed from its reference, with a
warning; it never silently becomes the raw reference. When the cache cannot be written, crops are made in a
temporary folder for this process (one warning): slower next time, same numbers.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence, TypeVar

import numpy as np

from multiid_bench.data._store import atomic_write_bytes, atomic_write_text, data_cache_dir
from multiid_bench.data.case import Bench
from multiid_bench.errors import BadInputError, ImageDecodeError

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "CROP_SIZE",
    "CROP_VERSION",
    "PAD_RATIO",
    "RefMode",
    "crop_reference",
    "pad_reference",
    "prepare_reference_crops",
    "reference_info",
    "reference_mode",
    "select_face",
    "square_face_box",
]

log = logging.getLogger(__name__)

CROP_VERSION = "faceextractor-v1"  # bump when the crop geometry or encoding changes
CROP_SIZE = 512
PAD_RATIO = 1.5
DEFAULT_JPEG_QUALITY = 75  # PIL's default, what infer_withanyone.py's ``.save("ref_k.jpg")`` wrote
RefMode = Literal["raw_refs", "prepared_crops", "mixed"]
_T = TypeVar("_T")


def square_face_box(box: Sequence[float], image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The crop window for a face box, exactly as the reference ``extract_moref`` computes it.

    Coordinates are truncated with ``int()`` (towards zero), the shorter side grows by ``d // 2`` before and
    ``d - d // 2`` after, then the window is clipped to ``image_size = (width, height)``.

    Example:
        >>> square_face_box((10.7, 20.2, 50.9, 100.0), (200, 200))  # 40x80 -> grow x by 20 each side
        (0, 20, 70, 100)

    Raises:
        BadInputError: the clipped window is empty (box outside the image).
    """
    x1, y1, x2, y2 = (int(v) for v in box)
    w, h = x2 - x1, y2 - y1
    if w > h:
        d = w - h
        y1 -= d // 2
        y2 += d - d // 2
    elif h > w:
        d = h - w
        x1 -= d // 2
        x2 += d - d // 2
    width, height = image_size
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
    if x2 <= x1 or y2 <= y1:
        raise BadInputError(f"face box {tuple(box)} lies outside the {width}x{height} image; cannot crop it")
    return x1, y1, x2, y2


def crop_reference(image: PILImage.Image, box: Sequence[float], size: int = CROP_SIZE) -> PILImage.Image:
    """Square-ify ``box`` (:func:`square_face_box`), crop with no margin, resize to ``size`` x ``size`` LANCZOS."""
    from PIL import Image

    window = square_face_box(box, image.size)
    return image.convert("RGB").crop(window).resize((size, size), Image.Resampling.LANCZOS)


def pad_reference(img: _T, ratio: float = PAD_RATIO) -> _T:
    """Centre ``img`` on a black square of side ``int(ratio * max(w, h))`` at ``((S - w) // 2, (S - h) // 2)``.

    Accepts a PIL image (returns RGB PIL) or an (H, W, 3) uint8 array (returns an array). A 512x512 crop
    becomes 768x768 with the crop at offset 128.
    """
    if isinstance(img, np.ndarray):
        if img.ndim != 3 or img.shape[2] != 3:
            raise BadInputError(f"pad_reference expects an (H, W, 3) array, got shape {img.shape}")
        h, w = img.shape[:2]
        s = int(ratio * max(w, h))
        out = np.zeros((s, s, 3), dtype=img.dtype)
        top, left = (s - h) // 2, (s - w) // 2
        out[top:top + h, left:left + w] = img
        return out  # type: ignore[return-value]
    from PIL import Image

    pil = img.convert("RGB")  # type: ignore[attr-defined]
    w, h = pil.size
    s = int(ratio * max(w, h))
    canvas = Image.new("RGB", (s, s), (0, 0, 0))
    canvas.paste(pil, ((s - w) // 2, (s - h) // 2))
    return canvas  # type: ignore[return-value]


def select_face(faces: Sequence[Any]) -> Any | None:
    """The highest-score face (first one on ties), as the generator's ``FaceExtractor`` takes ``res[0]``."""
    best = None
    for f in faces:
        if best is None or float(f.score) > float(best.score):
            best = f
    return best


def _detector_fingerprint(detector: Any) -> str:
    config = getattr(detector, "config", {}) or {}
    return f"{detector.id}|{json.dumps(dict(config), sort_keys=True, default=str)}"


def _crop_key(ref_sha: str, detector_fp: str, size: int, quality: int | None) -> str:
    text = f"{ref_sha}|{detector_fp}|{CROP_VERSION}|{size}|{quality}"
    return hashlib.sha256(text.encode()).hexdigest()


def _encode(img: PILImage.Image, quality: int | None) -> tuple[bytes, str]:
    buf = io.BytesIO()
    if quality is None:
        img.save(buf, format="PNG")
        return buf.getvalue(), ".png"
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), ".jpg"


def prepare_reference_crops(
    bench: Bench,
    *,
    detector: Any,
    cache_dir: str | Path | None = None,
    size: int = CROP_SIZE,
    jpeg_quality: int | None = DEFAULT_JPEG_QUALITY,
    batch_size: int = 8,
) -> Bench:
    """Replace each case's references by their tight face crops (cached), recording the mode in ``meta``.

    Args:
        bench: the bench whose ``refs`` are raw reference photos. Cases already marked
            ``ref_mode="prepared_crops"`` (e.g. an imported official folder) are kept as they are.
        detector: a :class:`multiid_bench.faces.Detector` (``id``, ``config``, ``detect(arrays)``); the paper
            used insightface antelopev2 (SCRFD-10G) at ``det_thresh=0.4``.
        cache_dir: cache root; crops live in ``<root>/data/refcrops/``.
        size: output side in pixels (512 in the paper).
        jpeg_quality: 75 reproduces the official ``ref_k.jpg``; ``None`` stores lossless PNG.
        batch_size: images per ``detector.detect`` call.

    Returns:
        A new bench. Its ``manifest_sha256`` is derived from the source bench's and the crop recipe (not
        from the cache location), so two machines agree. A reference in which no face is found (or that
        cannot be decoded) keeps its raw path and is listed in ``meta["ref_crop_failures"]``.
    """
    from multiid_bench.images import image_sha256, load_image

    store = data_cache_dir(cache_dir, "refcrops")
    det_fp = _detector_fingerprint(detector)
    sha_of: dict[Path, str | ImageDecodeError] = {}
    for case in bench.cases:
        if case.meta.get("ref_mode") == "prepared_crops":
            continue
        for ref in case.refs:
            if ref not in sha_of:
                try:
                    sha_of[ref] = image_sha256(ref)
                except ImageDecodeError as e:
                    sha_of[ref] = e
    keys = {ref: _crop_key(s, det_fp, size, jpeg_quality) for ref, s in sha_of.items() if isinstance(s, str)}
    todo: dict[str, Path] = {}
    for ref, key in keys.items():
        if _read_entry(store, key, warn=True) is None:  # absent, or a crop that failed its check
            todo.setdefault(key, ref)
    try:
        _compute_crops(todo, store, detector, size, jpeg_quality, batch_size, load_image, sha_of)
    except OSError as e:  # the cache is read-only or full: crops for this process only, same numbers
        import tempfile

        store = Path(tempfile.mkdtemp(prefix="mbench-refcrops-"))
        log.warning("cannot write reference crops to the cache (%s); making them in %s for this run instead "
                    "(same numbers, recomputed next time). Free space or pass a writable --cache-dir.", e, store)
        todo = {key: ref for ref, key in keys.items()}
        _compute_crops(todo, store, detector, size, jpeg_quality, batch_size, load_image, sha_of)
    if todo:
        log.info("prepared %d reference crops with %s", len(todo), detector.id)

    new_cases = []
    for case in bench.cases:
        if case.meta.get("ref_mode") == "prepared_crops":
            new_cases.append(case)
            continue
        refs, boxes, scores, failures = [], [], [], []
        for k, ref in enumerate(case.refs):
            entry = _read_entry(store, keys.get(ref)) if ref in keys else None
            if entry is None or entry.get("file") is None:
                s = sha_of.get(ref)
                reason = str(s) if isinstance(s, Exception) else (entry or {}).get("reason", "crop not computed")
                failures.append({"index": k, "reason": reason})
                refs.append(ref)
                boxes.append(None)
                scores.append(None)
                continue
            refs.append(store / entry["file"])
            boxes.append(entry["window"])
            scores.append(entry["score"])
        meta = dict(case.meta)
        meta.update({
            "ref_mode": "prepared_crops",
            "raw_refs": [str(r) for r in case.refs],
            "ref_crop": {"detector": detector.id, "version": CROP_VERSION, "size": size,
                         "jpeg_quality": jpeg_quality, "windows": boxes, "scores": scores},
            "ref_crop_failures": failures,
        })
        new_cases.append(dataclasses.replace(case, refs=tuple(refs), meta=meta))
    recipe = f"{bench.manifest_sha256}|refcrops|{det_fp}|{CROP_VERSION}|{size}|{jpeg_quality}"
    return Bench(id=bench.id, root=bench.root, cases=tuple(new_cases),
                 manifest_sha256=hashlib.sha256(recipe.encode()).hexdigest())


def _compute_crops(todo: dict[str, Path], store: Path, detector: Any, size: int, quality: int | None,
                   batch_size: int, load_image: Any, sha_of: dict[Path, Any]) -> None:
    items = list(todo.items())
    for start in range(0, len(items), max(1, batch_size)):
        chunk = []
        for key, ref in items[start:start + batch_size]:
            try:
                chunk.append((key, ref, load_image(ref)))
            except ImageDecodeError as e:
                sha_of[ref] = e  # not cached: the file may be fixed; reported as a failure of this case
        if not chunk:
            continue
        found = detector.detect([np.asarray(img, dtype=np.uint8) for _, _, img in chunk])
        if len(found) != len(chunk):
            raise BadInputError(f"detector {detector.id} returned {len(found)} results for {len(chunk)} images")
        for (key, ref, img), faces in zip(chunk, found):
            face = select_face(faces)
            folder = store / key[:2]
            if face is None:
                entry = {"file": None, "reason": f"no face detected in reference {ref.name} by {detector.id}"}
            else:
                window = square_face_box(face.box, img.size)
                data, ext = _encode(crop_reference(img, face.box, size), quality)
                atomic_write_bytes(folder / f"{key}{ext}", data)
                entry = {"file": f"{key[:2]}/{key}{ext}", "window": list(window), "score": float(face.score),
                         "box": [float(v) for v in face.box], "sha256": hashlib.sha256(data).hexdigest()}
            atomic_write_text(folder / f"{key}.json", json.dumps(entry, sort_keys=True))  # written last: marker


def _read_entry(store: Path, key: str | None, *, warn: bool = False) -> dict[str, Any] | None:
    """A crop entry whose crop file is present and has the bytes it was written with; None otherwise."""
    if key is None:
        return None
    path = store / key[:2] / f"{key}.json"
    try:
        entry = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        problem = f"unreadable entry ({e})"
    else:
        problem = _crop_problem(store, entry)
        if problem is None:
            return entry
    if warn:
        log.warning("reference crop %s failed its check (%s); recomputing it from its reference", path, problem)
    return None


def _crop_problem(store: Path, entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "not an object"
    if entry.get("file") is None:
        return None if isinstance(entry.get("reason"), str) else "no file and no reason"
    try:
        data = (store / str(entry["file"])).read_bytes()
    except OSError as e:
        return f"crop file {entry['file']}: {e.strerror or e}"
    if entry.get("sha256") != hashlib.sha256(data).hexdigest():
        return f"crop file {entry['file']} does not have the bytes it was written with"
    return None


def reference_mode(bench: Bench) -> RefMode:
    """``raw_refs`` unless cases say otherwise; ``mixed`` when cases disagree."""
    modes = {str(c.meta.get("ref_mode", "raw_refs")) for c in bench.cases}
    if len(modes) == 1:
        return modes.pop()  # type: ignore[return-value]
    return "raw_refs" if not modes else "mixed"


def reference_info(bench: Bench) -> dict[str, Any]:
    """What a run's ``results.json`` should record about its references (mode, crop recipe, failures)."""
    info: dict[str, Any] = {"mode": reference_mode(bench), "pad_ratio_at_scoring": PAD_RATIO}
    recipes = {json.dumps({k: v for k, v in c.meta["ref_crop"].items() if k in ("detector", "version", "size",
                                                                                 "jpeg_quality")}, sort_keys=True)
               for c in bench.cases if isinstance(c.meta.get("ref_crop"), dict)}
    if recipes:
        info["crop"] = [json.loads(r) for r in sorted(recipes)]
    failures = [{"case": c.id, **f} for c in bench.cases for f in c.meta.get("ref_crop_failures", ())]
    info["crop_failures"] = failures
    return info
