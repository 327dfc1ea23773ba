"""What ``mbench faces`` shows: detected faces per image, cross-image similarities per model, a picture.

Library side of the command (the CLI only parses flags and prints). It follows the same path as scoring
(decode once, detect once per image and detector, align per template, embed all faces in one batch), so
what a user sees here is what the evaluation sees.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from multiid_bench.errors import ConfigError
from multiid_bench.faces.profiles import ProfileEntry, get_profile
from multiid_bench.faces.types import Face

__all__ = ["InspectResult", "draw_annotations", "inspect_images", "select_entries"]

log = logging.getLogger(__name__)

# relaxed thresholds used only to show near-misses ("why was this face missed?")
_RELAXED = {"mtcnn": {"min_score": 0.5}, "scrfd": {"threshold": 0.2}, "scrfd-antelopev2": {"threshold": 0.2},
            "retinaface": {"threshold": 0.5}}


@dataclass
class InspectResult:
    """Faces per image and detector, and per model the labels and cosine matrix of every embedded face."""

    paths: list[str]
    sha256: list[str]
    sizes: list[tuple[int, int]]
    entries: list[ProfileEntry]
    faces: dict[str, list[list[Face]]] = field(default_factory=dict)  # detector -> per image
    rejected: dict[str, list[list[Face]]] = field(default_factory=dict)  # near-misses per detector
    #: detector -> per image: why it has no face although nothing failed (e.g. too small), else None
    no_face_reason: dict[str, list[str | None]] = field(default_factory=dict)
    labels: dict[str, list[str]] = field(default_factory=dict)  # model -> "image#face"
    similarity: dict[str, np.ndarray] = field(default_factory=dict)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": [
                {"path": p, "sha256": s, "size": list(sz),
                 "faces": {d: [f.to_dict() for f in per[i]] for d, per in self.faces.items()},
                 "no_face_reason": {d: per[i] for d, per in self.no_face_reason.items()},
                 "rejected": {d: [f.to_dict() for f in per[i]] for d, per in self.rejected.items()}}
                for i, (p, s, sz) in enumerate(zip(self.paths, self.sha256, self.sizes))
            ],
            "models": {
                m: {"card": self.cards[m], "detector": e.detector, "template": e.template,
                    "labels": self.labels[m], "similarity": np.round(self.similarity[m], 6).tolist()}
                for m, e in ((e.model, e) for e in self.entries)
            },
        }


def select_entries(profile: str, model: str | None = None, detector: str | None = None) -> list[ProfileEntry]:
    """The profile's entries, or one entry for ``model`` (its profile settings, else its own template)."""
    from multiid_bench.faces.models import FACE_MODELS

    prof = get_profile(profile)
    if model is None:
        entries = list(prof.entries)
    elif model in prof.models():
        entries = [prof.entry(model)]
    elif model in FACE_MODELS:
        spec = FACE_MODELS[model]
        entries = [ProfileEntry(model, detector or prof.entries[0].detector, spec.template, spec.input_convention,
                                prof.entries[0].ref_policy)]
    else:
        raise ConfigError(f"unknown face model {model!r}; choose one of {sorted(FACE_MODELS)}.")
    if detector is not None:
        entries = [ProfileEntry(e.model, detector, e.template, e.input_convention, e.ref_policy) for e in entries]
    return entries


def inspect_images(paths: Sequence[str | Path], entries: Sequence[ProfileEntry], *, device: str = "cpu",
                   cache_dir: str | None = None, offline: bool | None = None,
                   show_rejected: bool = False) -> InspectResult:
    """Detect, align and embed every face of ``paths`` for each entry (weights preflighted first)."""
    from multiid_bench.faces.align import align_faces
    from multiid_bench.faces.detect import TOO_SMALL_REASON, load_detector, too_small
    from multiid_bench.faces.models import load_face_model
    from multiid_bench.images import decode_image
    from multiid_bench.metrics.identity import cosine_matrix
    from multiid_bench.weights import get_store

    decoded = [decode_image(p) for p in paths]
    weight_ids = [w for e in entries for w in e.weight_ids()]
    get_store(cache_dir, offline=offline).ensure(weight_ids)  # one list of everything missing, before loading
    res = InspectResult(paths=[d.path for d in decoded], sha256=[d.sha256 for d in decoded],
                        sizes=[d.size for d in decoded], entries=list(entries))
    arrays = [d.array for d in decoded]
    for det_id in dict.fromkeys(e.detector for e in entries):
        det = load_detector(det_id, device=device, cache_dir=cache_dir, offline=offline)
        res.faces[det_id] = det.detect(arrays)
        res.no_face_reason[det_id] = [TOO_SMALL_REASON if too_small(det, a.shape) else None for a in arrays]
        if show_rejected and det_id in _RELAXED:
            loose = load_detector(det_id, device=device, cache_dir=cache_dir, offline=offline, **_RELAXED[det_id])
            res.rejected[det_id] = [
                [f for f in cand if not any(np.allclose(f.box, g.box, atol=2.0) for g in kept)]
                for cand, kept in zip(loose.detect(arrays), res.faces[det_id])
            ]
    for e in entries:
        model = load_face_model(e.model, device=device, cache_dir=cache_dir, offline=offline)
        size = model.card.crop_size
        crops, labels = [], []
        for i, (img, faces) in enumerate(zip(arrays, res.faces[e.detector])):
            crops.append(align_faces(img, faces, e.template, size))  # type: ignore[arg-type]
            labels += [f"{i}#{k}" for k in range(len(faces))]
        emb = model.embed(np.concatenate(crops)) if labels else np.zeros((0, model.card.embedding_dim), np.float32)
        res.labels[e.model] = labels
        res.similarity[e.model] = cosine_matrix(emb, emb)
        res.cards[e.model] = model.card.to_dict()
    return res


def draw_annotations(result: InspectResult, out: str | Path, *, detector: str | None = None,
                     height: int = 512) -> Path:
    """Save one PNG: the images side by side, kept faces in green (label, score, 5 landmarks), near-misses
    in orange with their score."""
    from PIL import Image, ImageDraw

    from multiid_bench.images import load_image

    det = detector or result.entries[0].detector
    panels = []
    for i, path in enumerate(result.paths):
        img = load_image(path)
        scale = height / img.height
        img = img.resize((max(1, round(img.width * scale)), height))
        draw = ImageDraw.Draw(img)
        for colour, faces, tag in (("#ff9900", result.rejected.get(det, [[]] * len(result.paths))[i], "miss"),
                                   ("#00e000", result.faces[det][i], "")):
            for k, f in enumerate(faces):
                x1, y1, x2, y2 = (v * scale for v in f.box)
                draw.rectangle((x1, y1, x2, y2), outline=colour, width=2)
                for x, y in f.landmarks:
                    draw.ellipse((x * scale - 2, y * scale - 2, x * scale + 2, y * scale + 2), fill=colour)
                label = f"{tag} {f.score:.2f}" if tag else f"{i}#{k} {f.score:.2f}"
                draw.text((x1 + 2, max(0, y1 - 12)), label, fill=colour)
        panels.append(img)
    canvas = Image.new("RGB", (sum(p.width for p in panels), height), (0, 0, 0))
    x = 0
    for p in panels:
        canvas.paste(p, (x, 0))
        x += p.width
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
