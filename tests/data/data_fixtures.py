"""Data-test helpers importable by name from test modules: tiny images, HF-schema rows, a fake detector."""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image


def png_bytes(color: tuple[int, int, int], size: tuple[int, int] = (16, 12)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(color: tuple[int, int, int], size: tuple[int, int] = (16, 12)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def hf_rows() -> list[dict[str, Any]]:
    """Three rows in the MultiID-Bench HF schema (p1, p2, p3 with three persons), PIL images."""
    def img(c: tuple[int, int, int], size: tuple[int, int] = (16, 12)) -> Image.Image:
        return Image.open(io.BytesIO(png_bytes(c, size)))

    return [
        {"ID": "h1", "GT": img((255, 0, 0), (32, 24)), "input_images": [img((1, 0, 0))], "prompt": "one",
         "task_type": "t", "bboxes": "[[1, 2, 10, 12]]", "subset": "p1", "num_persons": 1},
        {"ID": "h2", "GT": img((0, 255, 0), (32, 24)), "input_images": [img((2, 0, 0)), img((3, 0, 0))],
         "prompt": "two", "task_type": "t", "bboxes": "[[1, 2, 10, 12], [12, 2, 20, 12]]", "subset": "p2",
         "num_persons": 2},
        {"ID": "h3", "GT": img((0, 0, 255), (32, 24)),
         "input_images": [img((4, 0, 0)), img((5, 0, 0)), img((6, 0, 0))], "prompt": "three", "task_type": "t",
         "bboxes": "[[0, 0, 5, 5], [6, 0, 11, 5], [12, 0, 17, 5]]", "subset": "p3", "num_persons": 3},
    ]


@dataclass(frozen=True)
class FakeFace:
    box: tuple[float, float, float, float]
    score: float


@dataclass
class FakeDetector:
    """Implements the Detector contract: ``faces_for(array) -> list[FakeFace]``; counts images seen."""

    faces_for: Callable[[np.ndarray], list[FakeFace]]
    id: str = "fake-detector"
    config: dict[str, Any] = field(default_factory=lambda: {"threshold": 0.5})
    images_seen: int = 0

    def detect(self, images: Sequence[np.ndarray]) -> list[list[FakeFace]]:
        out = []
        for im in images:
            assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3
            self.images_seen += 1
            out.append(sorted(self.faces_for(im), key=lambda f: -f.score))
        return out
