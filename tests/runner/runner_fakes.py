"""Fakes for runner tests (imported by name: keep this module name unique in tests/): a colour-square "face" world with a detector, aligner and model that count calls.

A face is a solid square of one colour on a black canvas; its identity is its colour. The fake detector
finds each colour's bounding box, the fake aligner crops it, the fake model embeds a crop as its mean
colour plus a constant (so different colours are different but not orthogonal identities). Every call is
recorded, so tests can assert exactly what was decoded, detected and embedded.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from multiid_bench.data.case import Bench, Case
from multiid_bench.data.loaders import BenchLoad
from multiid_bench.adapters import get_adapter
from multiid_bench.runner import RunConfig, RunOutcome, Shard, run_evaluation
from multiid_bench.runner.extract import FaceBackend
from multiid_bench.runner.sources import AdapterSource


@dataclass
class FakeFace:
    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"box": list(self.box), "score": self.score, "landmarks": [list(p) for p in self.landmarks]}


class FakeDetector:
    """Finds solid colour squares (>= 16 pixels of one non-black colour)."""

    def __init__(self, det_id: str = "fake-det", threshold: float = 0.5) -> None:
        self.id = det_id
        self.config = {"threshold": threshold}
        self.calls = 0
        self.images_seen = 0

    def detect(self, images: Sequence[np.ndarray]) -> list[list[FakeFace]]:
        self.calls += 1
        self.images_seen += len(images)
        out = []
        for img in images:
            flat = img.reshape(-1, 3)
            colours, counts = np.unique(flat, axis=0, return_counts=True)
            faces = []
            for c, n in zip(colours, counts):
                if not c.any() or n < 16:
                    continue
                ys, xs = np.nonzero(np.all(img == c, axis=2))
                x1, y1, x2, y2 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
                cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
                faces.append(FakeFace((x1, y1, x2, y2), 0.99, ((cx, cy),) * 5))
            faces.sort(key=lambda f: (-f.score, f.box[0], f.box[1]))
            out.append(faces)
        return out


@dataclass
class FakeCard:
    id: str = "fake-model"
    version: str = "1"
    weights_sha256: str = "0" * 64
    template: str = "fake"
    crop_size: int = 4
    input_convention: str = "RGB mean colour"
    embedding_dim: int = 4
    cosine_scale_note: str = "toy"


class FakeModel:
    """Embeds a crop as (mean R, G, B, 60) / 255; records the colour of every crop it embeds."""

    def __init__(self, model_id: str = "fake-model", weights_sha256: str = "0" * 64) -> None:
        self.id = model_id
        self.card = FakeCard(id=model_id, weights_sha256=weights_sha256)
        self.calls = 0
        self.seen: list[tuple[int, int, int]] = []

    def embed(self, crops: np.ndarray) -> np.ndarray:
        self.calls += 1
        means = crops.reshape(crops.shape[0], -1, 3).mean(axis=1)
        self.seen += [tuple(int(round(v)) for v in m) for m in means]
        return np.concatenate([means, np.full((len(means), 1), 60.0)], axis=1).astype(np.float32) / 255.0


def fake_align(image: np.ndarray, faces: Sequence[dict[str, Any]]) -> np.ndarray:
    crops = []
    for f in faces:
        x1, y1, x2, y2 = (int(v) for v in f["box"])
        patch = image[y1:y2, x1:x2].reshape(-1, 3).mean(axis=0)
        crops.append(np.broadcast_to(patch.round().astype(np.uint8), (4, 4, 3)))
    return np.stack(crops) if crops else np.zeros((0, 4, 4, 3), np.uint8)


@dataclass
class FakeWorld:
    root: Path
    bench: Bench
    detector: FakeDetector = field(default_factory=FakeDetector)
    model: FakeModel = field(default_factory=FakeModel)

    def backends(self, name: str = "fake") -> list[FaceBackend]:
        return [FaceBackend(name=name, detector=self.detector, model=self.model, template="fake", ref_policy="drop-missing",
                        align=fake_align)]

    def load(self, invalid: Sequence[Any] = ()) -> BenchLoad:
        return BenchLoad(bench=self.bench, invalid=tuple(invalid), kind="jsonl")


# Identity colours (GT shade) and their reference shade: same person, slightly different pixels.
GT_COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40)]
REF_COLOURS = [(180, 60, 50), (60, 180, 50), (50, 60, 180), (180, 190, 60)]
BOXES = [(8, 8, 32, 32), (40, 8, 64, 32), (8, 40, 32, 64), (40, 40, 64, 64)]


def _save(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr).save(path)
    return path


def make_world(root: Path, persons: Sequence[int] = (1, 1, 2, 2, 3, 4)) -> FakeWorld:
    """A bench of colour-square cases (one per entry of ``persons``), written as PNGs under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    cases = []
    for i, k in enumerate(persons):
        gt = np.zeros((72, 72, 3), np.uint8)
        refs = []
        for j in range(k):
            x1, y1, x2, y2 = BOXES[j]
            # vary shades per case so cases differ; GT and ref of a person stay close
            gt[y1:y2, x1:x2] = np.array(GT_COLOURS[j]) - 3 * i
            ref = np.zeros((24, 24, 3), np.uint8)
            ref[:, :] = np.array(REF_COLOURS[j]) - 3 * i
            refs.append(_save(root / f"c{i}_ref{j}.png", ref))
        cid = f"case{i:02d}"
        cases.append(Case(id=cid, subset={1: "p1", 2: "p2"}.get(k, "p3"), prompt=f"prompt {i}",
                          gt=_save(root / f"c{i}_gt.png", gt), refs=tuple(refs), boxes=tuple(BOXES[:k]),
                          num_persons=k))
    return FakeWorld(root=root, bench=Bench(id="fake", root=root, cases=tuple(cases)))


def run(world: FakeWorld, model: str, out: Path, cache: Path, *, source: Any = None, invalid: tuple = (),
        on_row: Any = None, **cfg: Any) -> RunOutcome:
    settings: dict[str, Any] = {"scorers": False, **cfg}
    config = RunConfig(model=model, bench="fake", profile="fake", protocol="strict", ref_source="raw",
                       cache_dir=str(cache), **settings)
    shard = Shard(config.shard_index, config.shard_count)
    src = source or AdapterSource(get_adapter(model), out, global_seed=0, shard=shard)
    return run_evaluation(config, out, src, backends=world.backends(), profile={"name": "fake"},
                          bench_load=world.load(invalid), on_row=on_row)


def rows_of(out: Path) -> dict[str, dict[str, Any]]:
    rows = {}
    for f in sorted(out.glob("cases*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            rows[r["case_id"]] = r
    return rows
