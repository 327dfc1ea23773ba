"""Face boxes for generation: validation, the documented default layout, boxes from a layout photo.

Boxes are ``(x1, y1, x2, y2)`` in output pixels, one per reference, in reference order (spec §2.3).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from multiid_bench.errors import BadInputError

__all__ = [
    "CANVAS",
    "Box",
    "boxes_from_layout_photo",
    "default_layout",
    "resize_bbox",
    "validate_boxes",
]

Box = tuple[float, float, float, float]
CANVAS = 512  # the official layouts and layout photos live in a 512 x 512 square


def resize_bbox(box: Sequence[float], width: int, height: int, canvas: int = CANVAS) -> Box:
    """Map a box from the ``canvas``² square to a W x H image: uniform scale min(W, H)/canvas, centred."""
    s = min(width, height) / canvas
    ox, oy = (width - canvas * s) / 2.0, (height - canvas * s) / 2.0
    x1, y1, x2, y2 = (float(v) for v in box)
    return (x1 * s + ox, y1 * s + oy, x2 * s + ox, y2 * s + oy)


def default_layout(num_faces: int, width: int, height: int) -> list[Box]:
    """Deterministic layout used when neither boxes nor a layout photo are given.

    Ours, not the official random pick among hard-coded layouts (which the official README calls
    "not recommended"): in the 512² square, ``n`` equal square faces in one row, centres at
    x = 512 (i + 0.5) / n and y = 0.36 * 512 (upper third, where portrait faces sit), side
    min(0.32 * 512, 0.8 * 512 / n); then mapped to W x H with ``resize_bbox``.
    """
    if num_faces < 1:
        raise BadInputError("a layout needs at least one face; pass at least one reference.")
    side = min(0.32 * CANVAS, 0.8 * CANVAS / num_faces)
    cy = 0.36 * CANVAS
    boxes = []
    for i in range(num_faces):
        cx = CANVAS * (i + 0.5) / num_faces
        boxes.append(resize_bbox((cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2), width, height))
    return boxes


def validate_boxes(boxes: Any, num_references: int, width: int, height: int) -> list[Box]:
    """Check one well-formed box per reference, inside the W x H image; return them as float tuples."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise BadInputError(
            f"boxes must be a list of [x1, y1, x2, y2] (one per reference); got an array of shape {arr.shape}."
        )
    if arr.shape[0] != num_references:
        raise BadInputError(
            f"{arr.shape[0]} boxes for {num_references} references: give exactly one box per reference, in the "
            "same order."
        )
    out: list[Box] = []
    for i, (x1, y1, x2, y2) in enumerate(arr.tolist()):
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise BadInputError(f"box {i} {[x1, y1, x2, y2]} has a non-finite coordinate.")
        if not (x2 > x1 and y2 > y1):
            raise BadInputError(f"box {i} {[x1, y1, x2, y2]} is empty: need x2 > x1 and y2 > y1.")
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise BadInputError(
                f"box {i} {[x1, y1, x2, y2]} lies outside the {width}x{height} output image; boxes are in output "
                "pixels (0 <= x1 < x2 <= width, 0 <= y1 < y2 <= height)."
            )
        out.append((x1, y1, x2, y2))
    return out


def boxes_from_layout_photo(photo: np.ndarray, detector: Any, num_faces: int, width: int, height: int) -> list[Box]:
    """Face boxes of an example photo, mapped to a W x H output (gradio "Option 1", deterministic).

    The ``num_faces`` most confident detections are kept in detector (confidence) order, which the caller's
    reference order must follow. The photo is cut to the square of side max(short side, face span) centred
    on the faces (the official code offsets it at random), the boxes are mapped to 512² and then to W x H.
    """
    faces = detector.detect([np.asarray(photo)])[0]
    if len(faces) < num_faces:
        raise BadInputError(
            f"the layout photo shows {len(faces)} face(s) but {num_faces} references were given; use a photo with "
            "at least as many visible faces, or pass boxes explicitly."
        )
    chosen = np.asarray([f.box for f in faces[:num_faces]], dtype=np.float64)
    h, w = photo.shape[:2]
    ux1, uy1 = chosen[:, 0].min(), chosen[:, 1].min()
    ux2, uy2 = chosen[:, 2].max(), chosen[:, 3].max()
    side = max(min(h, w), ux2 - ux1, uy2 - uy1)
    cx, cy = (ux1 + ux2) / 2.0, (uy1 + uy2) / 2.0
    ox = float(np.clip(cx - side / 2.0, min(0.0, w - side), max(0.0, w - side)))
    oy = float(np.clip(cy - side / 2.0, min(0.0, h - side), max(0.0, h - side)))
    scale = CANVAS / side
    out = []
    for x1, y1, x2, y2 in chosen.tolist():
        sq = [(x1 - ox) * scale, (y1 - oy) * scale, (x2 - ox) * scale, (y2 - oy) * scale]
        sq = [float(np.clip(v, 0.0, CANVAS)) for v in sq]
        out.append(resize_bbox(sq, width, height))
    return out
