"""The offline demo bench (``--bench demo``): real photos that installed packages ship, no downloads.

Sources: insightface's ``data/images/t1.jpg`` (six people) and ``Tom_Hanks_54745.png``, scikit-image's
astronaut, matplotlib's ``grace_hopper.jpg``. The committed manifest ``demo_assets/demo_manifest.json`` holds
everything else: per person the face box (found once with facenet-pytorch's MTCNN at development time;
``tests/data`` checks MTCNN still finds a face in each), per case the GT region of its source photo, the
persons in it and the prompt, per person the augmentation that turns a crop of the same photo into its
reference (horizontal flip, colour jitter, a slight zoom), so a reference never equals GT pixels.

The build is deterministic (fixed crops, LANCZOS, PIL enhancers, PNG) and cached in
``<cache>/data/demo/<key>/`` where the key hashes the manifest, the build version and the source pixels.
The folder holds ``bench.jsonl`` and is read through the ordinary JSONL loader, so the demo exercises the
same path as user data.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from multiid_bench.data._store import publish_dir, write_jsonl
from multiid_bench.data.case import Bench, subset_for_persons
from multiid_bench.errors import BadInputError, MissingDependencyError

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["DEMO_BUILD_VERSION", "DEMO_MANIFEST", "build_demo_bench", "demo_sources", "load_demo_manifest",
           "mtcnn_faces"]

log = logging.getLogger(__name__)

DEMO_BUILD_VERSION = 2  # bump when the build changes pixels or layout
DEMO_MANIFEST = Path(__file__).with_name("demo_assets") / "demo_manifest.json"
_PIP = {"insightface": "insightface", "skimage": "scikit-image", "matplotlib": "matplotlib"}


def load_demo_manifest(path: Path = DEMO_MANIFEST) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # locates the package without importing it (insightface is heavy)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"the demo bench needs the photos shipped with {package!r}; install it: pip install {_PIP.get(package, package)}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _load_source(spec: dict[str, Any]) -> PILImage.Image:
    from PIL import Image

    from multiid_bench.images import load_image

    kind = spec["kind"]
    if kind == "package_file":
        path = _package_dir(spec["package"]) / spec["path"]
        if not path.is_file():
            raise MissingDependencyError(
                f"demo source {path} is missing from the installed {spec['package']!r}; reinstall it "
                f"(pip install --force-reinstall {_PIP.get(spec['package'], spec['package'])})"
            )
        img = load_image(path)
    elif kind == "skimage":
        _package_dir("skimage")
        import skimage.data

        img = Image.fromarray(np.asarray(getattr(skimage.data, spec["name"])(), dtype=np.uint8)).convert("RGB")
    elif kind == "matplotlib_sample":
        _package_dir("matplotlib")
        import matplotlib.cbook

        img = load_image(matplotlib.cbook.get_sample_data(spec["name"], asfileobj=False))
    elif kind == "package_data":  # small photos shipped in demo_assets/ (provenance in demo_assets/PHOTOS.md)
        img = load_image(DEMO_MANIFEST.with_name(spec["path"]))
    else:
        raise BadInputError(f"demo manifest: unknown source kind {kind!r}")
    canvas = spec.get("canvas")
    if canvas:  # small tight face crops (Tom Hanks, 112 px) get room around them so detectors see a face
        scale, size = int(canvas["scale"]), int(canvas["size"])
        big = img.resize((img.width * scale, img.height * scale), Image.Resampling.LANCZOS)
        out = Image.new("RGB", (size, size), tuple(canvas["fill"]))
        out.paste(big, ((size - big.width) // 2, (size - big.height) // 2))
        img = out
    return img


def demo_sources(manifest: dict[str, Any] | None = None) -> dict[str, PILImage.Image]:
    """The prepared source photos by name (after any ``canvas`` step), as the manifest's boxes refer to them."""
    manifest = manifest or load_demo_manifest()
    return {name: _load_source(spec) for name, spec in sorted(manifest["sources"].items())}


def _ref_window(face: Sequence[float], size: tuple[int, int], margin: float, scale: float) -> tuple[int, int, int]:
    """Square window (x0, y0, side) centred on the face, shifted to stay inside the image."""
    x1, y1, x2, y2 = face
    side = int(round(max(x2 - x1, y2 - y1) * margin * scale))
    side = min(side, size[0], size[1])
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    x0 = int(min(max(round(cx - side / 2), 0), size[0] - side))
    y0 = int(min(max(round(cy - side / 2), 0), size[1] - side))
    return x0, y0, side


def _make_reference(src: PILImage.Image, face: Sequence[float], aug: dict[str, Any],
                    out_size: int) -> tuple[PILImage.Image, list[float]]:
    """Crop around the face, zoom, flip, colour-jitter; return the image and the face box inside it."""
    from PIL import Image, ImageEnhance, ImageOps

    x0, y0, side = _ref_window(face, src.size, float(aug.get("margin", 1.8)), float(aug.get("scale", 1.0)))
    img = src.crop((x0, y0, x0 + side, y0 + side)).resize((out_size, out_size), Image.Resampling.LANCZOS)
    k = out_size / side
    box = [(face[0] - x0) * k, (face[1] - y0) * k, (face[2] - x0) * k, (face[3] - y0) * k]
    if aug.get("flip"):
        img = ImageOps.mirror(img)
        box = [out_size - box[2], box[1], out_size - box[0], box[3]]
    img = ImageEnhance.Brightness(img).enhance(float(aug.get("brightness", 1.0)))
    img = ImageEnhance.Contrast(img).enhance(float(aug.get("contrast", 1.0)))
    img = ImageEnhance.Color(img).enhance(float(aug.get("color", 1.0)))
    return img, [round(max(0.0, min(float(out_size), v)), 2) for v in box]


def _inside(face: Sequence[float], region: Sequence[int]) -> bool:
    return face[0] >= region[0] and face[1] >= region[1] and face[2] <= region[2] and face[3] <= region[3]


def _build_key(manifest_bytes: bytes, sources: dict[str, PILImage.Image]) -> str:
    h = hashlib.sha256(f"demo-v{DEMO_BUILD_VERSION}".encode() + b"\0" + manifest_bytes)
    for name, img in sources.items():
        arr = np.asarray(img)
        h.update(name.encode() + str(arr.shape).encode() + arr.tobytes())
    return h.hexdigest()


def _png(img: PILImage.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", compress_level=1)  # fixed settings: equal pixels give equal bytes


def _write_demo(folder: Path, manifest: dict[str, Any], sources: dict[str, PILImage.Image]) -> None:
    persons = manifest["persons"]
    out_size = int(manifest["ref_size"])
    ref_boxes: dict[str, list[float]] = {}
    for name in sorted(persons):
        p = persons[name]
        # "ref_from": the reference is cut from another photo of the same person (a real angular gap between
        # GT and reference, so copy-paste can tell a copy of the reference from a reproduction of the GT)
        ref_src = p.get("ref_from") or {"source": p["source"], "face": p["face"]}
        ref, box = _make_reference(sources[ref_src["source"]], ref_src["face"], p["ref"], out_size)
        _png(ref, folder / "refs" / f"{name}.png")
        ref_boxes[name] = box
    records = []
    for c in manifest["cases"]:
        src, region, who = sources[c["source"]], [int(v) for v in c["region"]], list(c["persons"])
        boxes = []
        for name in who:
            face = persons[name]["face"]
            if persons[name]["source"] != c["source"] or not _inside(face, region):
                raise BadInputError(f"demo manifest: case {c['id']!r}: person {name!r} is not inside its region")
            boxes.append([round(face[0] - region[0], 2), round(face[1] - region[1], 2),
                          round(face[2] - region[0], 2), round(face[3] - region[1], 2)])
        _png(src.crop(tuple(region)), folder / "gt" / f"{c['id']}.png")
        records.append({
            "id": c["id"], "subset": subset_for_persons(len(who)), "prompt": c["prompt"], "gt": f"gt/{c['id']}.png",
            "refs": [f"refs/{n}.png" for n in who], "boxes": boxes, "num_persons": len(who), "identities": who,
            "meta": {"source": c["source"], "region": region, "ref_boxes": [ref_boxes[n] for n in who],
                     "demo_version": DEMO_BUILD_VERSION},
        })
    write_jsonl(folder / "bench.jsonl", records)
    sums = {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
    (folder / DEMO_CHECKSUMS).write_text(json.dumps(sums, indent=1, sort_keys=True) + "\n")


#: Written last into a built demo folder: the sha256 of every file, checked on every load.
DEMO_CHECKSUMS = "checksums.json"


def demo_folder_problem(folder: Path) -> str | None:
    """Why a built demo folder cannot be trusted (a file missing, changed or added), or None when it checks out."""
    try:
        sums = json.loads((folder / DEMO_CHECKSUMS).read_text())
    except (OSError, ValueError) as e:
        return f"no readable {DEMO_CHECKSUMS} ({e})"
    if not isinstance(sums, dict):
        return f"{DEMO_CHECKSUMS} is not an object"
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {DEMO_CHECKSUMS}
    if present != set(sums):
        return f"files differ from {DEMO_CHECKSUMS}: {sorted(present ^ set(sums))[:3]}"
    for rel, digest in sums.items():
        try:
            if hashlib.sha256((folder / rel).read_bytes()).hexdigest() != digest:
                return f"{rel} has changed"
        except OSError as e:
            return f"{rel}: {e.strerror or e}"
    return None


def build_demo_bench(cache_dir: str | Path) -> Bench:
    """Build (once) and load the demo bench under ``cache_dir``; identical input gives identical files.

    Raises:
        MissingDependencyError: a package that ships a source photo is not installed.
    """
    from multiid_bench.data.records import load_jsonl

    manifest_bytes = DEMO_MANIFEST.read_bytes()
    manifest = json.loads(manifest_bytes)
    sources = demo_sources(manifest)
    key = _build_key(manifest_bytes, sources)
    folder = Path(cache_dir).expanduser() / key[:16]
    problem = demo_folder_problem(folder) if folder.is_dir() else "not built"
    if problem and folder.is_dir():  # checked against its manifest on every load: rebuilt, never trusted
        log.warning("the demo bench in %s failed its check (%s); rebuilding it", folder, problem)
        aside = folder.parent / f".bad-{key[:16]}-{os.getpid()}"
        os.replace(folder, aside)
        shutil.rmtree(aside, ignore_errors=True)
    if problem:
        tmp = folder.parent / f".tmp-{key[:16]}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _write_demo(tmp, manifest, sources)
            publish_dir(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("built the demo bench in %s", folder)
    loaded = load_jsonl(folder / "bench.jsonl", bench_id="demo")
    if loaded.invalid:  # our own files: a failure here is a bug, not user input
        raise BadInputError("demo bench is inconsistent:\n" + "\n".join(r.message for r in loaded.invalid))
    return loaded.bench


def mtcnn_faces(
    images: Sequence[PILImage.Image], *, min_prob: float = 0.0, min_face_size: int = 20
) -> list[list[tuple[list[float], float]]]:
    """facenet-pytorch MTCNN boxes and probabilities per image (how the manifest's boxes were made).

    Used at development time (default settings) to (re)compute ``face`` boxes and by the tests to check
    them (a larger ``min_face_size`` skips pyramid levels for faces smaller than any in the demo).
    """
    try:
        import torch
        from facenet_pytorch import MTCNN
    except ImportError as e:
        raise MissingDependencyError("checking demo faces needs facenet-pytorch: pip install facenet-pytorch") from e
    detector = MTCNN(keep_all=True, device="cpu", min_face_size=min_face_size)
    rgb = [img.convert("RGB") for img in images]
    out: list[list[tuple[list[float], float]]] = [[] for _ in rgb]
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(rgb):
        by_size.setdefault(img.size, []).append(i)
    with torch.inference_mode():
        for idx in by_size.values():  # same-size images go through the pyramid as one batch
            boxes, probs = detector.detect([rgb[i] for i in idx])
            for i, b_img, p_img in zip(idx, boxes, probs):
                if b_img is None:
                    continue
                for b, p in zip(np.asarray(b_img, dtype=np.float64), np.asarray(p_img, dtype=np.float64)):
                    if p >= min_prob:
                        out[i].append(([round(float(v), 1) for v in b], float(p)))
    return out
