"""From records to training batches: square crop, paired references, landmarks, a deterministic stream.

Every random choice for a sample (which record, crop offset, paired reference, caption dropout, noise) is
drawn from a generator seeded by ``(seed, position)``, where ``position`` is the sample's index in the global
stream (``step · global_batch + slot``). Rank ``r`` of ``W`` takes the slots ``[r·b, (r+1)·b)`` of each global
batch. Hence the data seen at a step does not depend on the number of processes, workers or restarts:
resuming at step ``s`` continues exactly, and 1 process with batch 4 sees what 2 processes with batch 2 see.
A record that fails (decode error, boxes/embeddings mismatch, no face for the ID loss, ...) is replaced by a
deterministic redraw and reported in the batch's ``skips`` so the trainer can count it.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from multiid_bench.errors import ConfigError, MissingDataError

from .data import UNKNOWN_NAMES, Record, RecordError, RecordSource
from .losses import match_landmarks_to_boxes

if TYPE_CHECKING:
    import torch

    from .bank import ReferenceBank

__all__ = ["ReferencePhotos", "SampleConfig", "TrainStream", "collate", "people_phrase", "sample_seed"]

logger = logging.getLogger(__name__)

# (H, W, 3) uint8 -> (boxes (K, 4), landmarks (K, 5, 2)) of the detections on the GT image.
LandmarkDetector = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
_NUMBER_WORDS = {1: "a person", 2: "two people", 3: "three people", 4: "four people", 5: "five people"}


def people_phrase(n: int) -> str:
    """'a person', 'two people', ... used by the phase-1 fixed prompt template ``{people}``."""
    return _NUMBER_WORDS.get(n, f"{n} people")


def sample_seed(seed: int, position: int, *salt: int | str) -> int:
    """A 63-bit seed from (run seed, stream position, salt); stable across Python runs and platforms."""
    text = ":".join(str(x) for x in (seed, position, *salt))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


@dataclass(frozen=True)
class SampleConfig:
    """How a record becomes a sample (the data part of the training config)."""

    resolution: int = 512
    min_faces: int = 1
    max_faces: int = 4
    paired_ratio: float = 0.0
    paired_min_sim: float = 0.6
    paired_max_sim: float = 0.95
    fixed_prompt: str | None = None
    caption_dropout: float = 0.1
    drop_content: str = ""
    need_landmarks: bool = True
    min_iou: float = 0.3
    max_redraws: int = 32
    # SigLIP-branch runs only (model.branch = "sig"); an "arc" run ignores these three.
    siglip_features: Literal["encode", "precomputed"] = "encode"  # encode reference crops in the step, or read
    #   the record npy's "siglip" (N, T, C) array (self-references only; computed with the same encoder)
    siglip_crop_size: int = 512  # square face crop fed to the SigLIP processor (spec §2.2: 512², Lanczos)
    siglip_min_face: float = 0.0  # skip records with a reference face smaller than this (px); released: 100
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.resolution % 16:
            raise ConfigError(f"data.resolution must be a multiple of 16, got {self.resolution}")
        if not 1 <= self.min_faces <= self.max_faces:
            raise ConfigError(f"data.min_faces/max_faces must satisfy 1 <= min <= max, got "
                              f"{self.min_faces}/{self.max_faces}")
        if self.siglip_features not in ("encode", "precomputed") or self.siglip_crop_size < 1:
            raise ConfigError(f"data.siglip_features must be 'encode' or 'precomputed' (got {self.siglip_features!r}) "
                              f"and data.siglip_crop_size >= 1 (got {self.siglip_crop_size})")
        for name in ("paired_ratio", "caption_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"data.{name} must be in [0, 1], got {getattr(self, name)}")


def _square_crop(rec: Record, rng: np.random.Generator) -> tuple[int, int, int]:
    """(x0, y0, side): a square of the short side that keeps every face when it can (random slack)."""
    h, w = rec.image.shape[:2]
    side = min(h, w)
    lo = rec.boxes[:, :2].min(axis=0)
    hi = rec.boxes[:, 2:].max(axis=0)
    offsets = []
    for axis, length in ((0, w), (1, h)):
        if length == side:
            offsets.append(0)
            continue
        a, b = max(0.0, hi[axis] - side), min(lo[axis], length - side)
        if a > b:  # faces span more than the side: centre on them
            a = b = min(max((lo[axis] + hi[axis] - side) / 2, 0.0), length - side)
        offsets.append(int(round(rng.uniform(a, b))) if b > a else int(round(a)))
    return offsets[0], offsets[1], side


class ReferencePhotos:
    """Bank row -> the reference photo's SigLIP face crop, for paired samples of a SigLIP run.

    The bank stores embeddings only; its ``source_hash`` of a ``REF_DIR`` entry is ``key_hash("<name>/<stem>")``,
    so the photo is ``REF_DIR/<name>/<stem>.jpg`` and its face the first box of ``<stem>.json`` (as released).
    """

    def __init__(self, ref_dir: str | Path) -> None:
        from .bank import key_hash

        root = Path(ref_dir)
        if not root.is_dir():
            raise MissingDataError(f"data.ref_dir {root} not found; it must be the REF_DIR the bank was built from")
        self.paths = {key_hash(f"{jpg.parent.name}/{jpg.stem}"): jpg for jpg in sorted(root.glob("*/*.jpg"))}

    def crop(self, bank: ReferenceBank, name: str, embedding: np.ndarray, size: int, min_face: float
             ) -> np.ndarray | None:
        """(size, size, 3) uint8 crop of the bank entry ``embedding`` of ``name``; None when unavailable."""
        import json

        from PIL import Image

        from .references import square_face_crop

        i = bank.identity_id(name)
        lo, hi = int(bank.offsets[i]), int(bank.offsets[i + 1])
        rows = np.flatnonzero((bank.embeddings[lo:hi] == embedding).all(axis=1))
        jpg = self.paths.get(int(bank.source_hash[lo + rows[0]])) if len(rows) else None
        if jpg is None:
            return None
        try:
            box = json.loads(jpg.with_suffix(".json").read_text())["bboxes"][0]
            with Image.open(jpg) as im:
                arr = np.asarray(im.convert("RGB"))
        except (OSError, ValueError, KeyError, IndexError) as exc:
            logger.warning("paired reference %s unusable for SigLIP: %s", jpg, exc)
            return None
        if min(box[2] - box[0], box[3] - box[1]) < min_face:
            return None
        return np.asarray(square_face_crop(arr, box, size))


class SampleBuilder:
    """Turns a record into tensors; raises RecordError for what must be skipped.

    ``siglip`` ("encode" / "precomputed", SigLIP-branch runs): each sample also carries its references' SigLIP
    input — ``ref_crops`` (F, S, S, 3) uint8 square face crops (the inference crop, ``square_face_crop``) — or
    the record's precomputed ``siglip`` features (F, T, C); None (ArcFace runs) adds nothing.
    """

    def __init__(self, cfg: SampleConfig, bank: ReferenceBank | None, detector: LandmarkDetector | None, *,
                 siglip: str | None = None, ref_photos: ReferencePhotos | None = None) -> None:
        self.cfg, self.bank, self.detector = cfg, bank, detector
        self.siglip, self.ref_photos = siglip, ref_photos

    def __call__(self, rec: Record, rng: np.random.Generator, position: int) -> tuple[dict[str, Any], list[str]]:
        from PIL import Image

        cfg, n = self.cfg, len(rec.boxes)
        events: list[str] = []
        if not cfg.min_faces <= n <= cfg.max_faces:
            raise RecordError("face_count", f"{rec.source}: record {rec.key!r} has {n} faces, outside "
                              f"[{cfg.min_faces}, {cfg.max_faces}]")
        x0, y0, side = _square_crop(rec, rng)
        res = cfg.resolution
        scale = res / side
        crop = Image.fromarray(rec.image[y0:y0 + side, x0:x0 + side]).resize((res, res), Image.Resampling.LANCZOS)
        pixels = np.asarray(crop)
        shift = np.array([x0, y0], np.float32)
        boxes = ((rec.boxes.reshape(-1, 2, 2) - shift) * scale).reshape(-1, 4).clip(0, res)
        face_ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        lm = np.zeros((n, 5, 2), np.float32)
        lm_ok = np.zeros(n, bool)
        if cfg.need_landmarks:
            if rec.landmarks is not None:
                lm, lm_ok = (rec.landmarks - shift) * scale, face_ok.copy()
            elif self.detector is not None:
                det_boxes, det_lm = self.detector(pixels)
                lm, lm_ok = match_landmarks_to_boxes(det_boxes, det_lm, boxes, min_iou=cfg.min_iou)
                lm_ok &= face_ok
            if not lm_ok.any():
                raise RecordError("no_face_for_id_loss", f"{rec.source}: record {rec.key!r}: no face of the GT "
                                  "image could be located for the ID loss")
            if not lm_ok.all():
                events.append("face_without_landmarks")
        cond = rec.embeddings.copy()
        paired = False
        crops = self._self_crops(rec) if self.siglip == "encode" else None
        if cfg.paired_ratio > 0 and rng.random() < cfg.paired_ratio:
            refs = [None] * n
            if self.bank is not None:
                from .bank import key_hash

                refs = [self.bank.pick_reference(name, rec.embeddings[i], rng, exclude_hash=key_hash(rec.key),
                                                 min_sim=cfg.paired_min_sim, max_sim=cfg.paired_max_sim)
                        for i, name in enumerate(rec.names)]
            ref_crops = None
            if self.siglip is not None and all(r is not None for r in refs):  # the SigLIP input of each reference
                ref_crops = [None if self.ref_photos is None else
                             self.ref_photos.crop(self.bank, name, r, cfg.siglip_crop_size, cfg.siglip_min_face)
                             for name, r in zip(rec.names, refs)]
                refs = refs if all(c is not None for c in ref_crops) else [None]
            if all(r is not None for r in refs):
                cond, paired = np.stack(refs).astype(np.float32), True
                crops = np.stack(ref_crops) if ref_crops is not None else crops
            else:
                events.append("paired_fallback")
        if cfg.fixed_prompt is not None:
            caption = cfg.fixed_prompt.format(people=people_phrase(n), n=n)
        else:
            caption = cfg.drop_content if rng.random() < cfg.caption_dropout else rec.caption
        f = cfg.max_faces
        identity = np.zeros(f, np.int64)
        bank_id = np.full(f, -1, np.int64)
        for i, name in enumerate(rec.names):
            bid = self.bank.identity_id(name) if self.bank is not None else -1
            bank_id[i] = bid
            if bid >= 0:
                identity[i] = bid
            elif name.lower() in UNKNOWN_NAMES or name.startswith("person_"):
                identity[i] = -(position * f + i + 1)  # unknown: unique, never equal to another face
            else:
                identity[i] = (1 << 40) + sample_seed(0, 0, name) % (1 << 40)
        identity[n:] = [-(position * f + i + 1) for i in range(n, f)]

        def pad(a: np.ndarray, fill: float = 0.0) -> np.ndarray:
            out = np.full((f, *a.shape[1:]), fill, a.dtype)
            out[:n] = a
            return out

        sample = {
            "pixels": pixels, "caption": caption, "key": rec.key, "paired": paired,
            "boxes": pad(boxes.astype(np.float32)), "face_valid": pad(face_ok), "cond_emb": pad(cond),
            "target_emb": pad(rec.embeddings), "landmarks": pad(lm.astype(np.float32)), "lm_valid": pad(lm_ok),
            "identity": identity, "bank_id": bank_id, "position": position,
        }
        if crops is not None:
            sample["ref_crops"], sample["ref_valid"] = pad(crops), pad(np.ones(n, bool))
        elif self.siglip == "precomputed":
            if rec.siglip is None:
                raise RecordError("missing_siglip_features", f"{rec.source}: record {rec.key!r} has no 'siglip' "
                                  "features in its npy (data.siglip_features = 'precomputed')")
            sample["siglip"], sample["ref_valid"] = pad(rec.siglip.astype(np.float32)), pad(np.ones(n, bool))
        return sample, events

    def _self_crops(self, rec: Record) -> np.ndarray:
        """Self-reference SigLIP crops: each face of the original record image, as ``references.py`` crops."""
        from .references import square_face_crop

        size = self.cfg.siglip_crop_size
        sides = np.minimum(rec.boxes[:, 2] - rec.boxes[:, 0], rec.boxes[:, 3] - rec.boxes[:, 1])
        if (sides < self.cfg.siglip_min_face).any():
            raise RecordError("small_face_for_siglip", f"{rec.source}: record {rec.key!r} has a face of "
                              f"{float(sides.min()):.0f} px < data.siglip_min_face = {self.cfg.siglip_min_face}")
        return np.stack([np.asarray(square_face_crop(rec.image, box, size)) for box in rec.boxes])


class TrainStream:
    """Map-style dataset over stream positions (see module docstring); pair it with :meth:`batch_positions`."""

    def __init__(self, sources: Sequence[RecordSource], weights: Sequence[float] | None, builder: SampleBuilder,
                 *, seed: int) -> None:
        if not sources:
            raise MissingDataError("no training data sources configured (data.paths is empty)")
        self.sources, self.builder, self.seed = list(sources), builder, seed
        w = np.asarray(weights if weights is not None else [len(s) for s in sources], np.float64)
        if len(w) != len(self.sources) or (w < 0).any() or w.sum() <= 0:
            raise ConfigError(f"data.weights {list(w)} must give one non-negative weight per path, not all 0")
        self.probs = w / w.sum()
        self._perm_cache: dict[int, np.ndarray] = {}

    def _pick(self, position: int, attempt: int) -> tuple[int, int]:
        if attempt == 0 and len(self.sources) == 1:  # epochs without replacement for a single source
            n = len(self.sources[0])
            epoch = position // n
            if epoch not in self._perm_cache:
                self._perm_cache = {epoch: np.random.default_rng(sample_seed(self.seed, epoch, "epoch"))
                                    .permutation(n)}
            return 0, int(self._perm_cache[epoch][position % n])
        rng = np.random.default_rng(sample_seed(self.seed, position, "pick", attempt))
        s = int(rng.choice(len(self.sources), p=self.probs))
        return s, int(rng.integers(len(self.sources[s])))

    def __getitem__(self, position: int) -> dict[str, Any]:
        skips: list[tuple[str, str]] = []
        for attempt in range(self.builder.cfg.max_redraws):
            s, i = self._pick(position, attempt)
            src = self.sources[s]
            rng = np.random.default_rng(sample_seed(self.seed, position, "sample", attempt))
            try:
                sample, events = self.builder(src.read(i), rng, position)
            except RecordError as exc:
                logger.debug("skipped %s: %s", exc.reason, exc)
                skips.append((exc.reason, f"{src.root}:{src.key(i)}"))
                continue
            sample["skips"] = skips
            sample["events"] = events
            return sample
        raise MissingDataError(f"{self.builder.cfg.max_redraws} records in a row failed at stream position "
                               f"{position} (last: {skips[-1]}); the data is unusable for this config")

    @staticmethod
    def batch_positions(step: int, global_batch: int, rank: int, world_size: int) -> list[int]:
        """Stream positions of this rank's share of the global batch at ``step``."""
        if global_batch % world_size:
            raise ConfigError(f"global batch {global_batch} is not divisible by {world_size} processes")
        b = global_batch // world_size
        start = step * global_batch + rank * b
        return list(range(start, start + b))


class StepSampler:
    """Batch sampler yielding this rank's positions for steps ``start_step, start_step + 1, ...``."""

    def __init__(self, start_step: int, max_steps: int, global_batch: int, rank: int, world_size: int) -> None:
        self.start, self.stop = start_step, max_steps
        self.args = (global_batch, rank, world_size)

    def __iter__(self):
        for step in range(self.start, self.stop):
            yield TrainStream.batch_positions(step, *self.args)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of samples; ``pixels`` become (B, 3, H, W) float32 in [−1, 1]."""
    import torch

    out: dict[str, Any] = {}
    px = torch.from_numpy(np.stack([s["pixels"] for s in samples])).permute(0, 3, 1, 2).float()
    out["pixels"] = px / 127.5 - 1.0
    for k in ("boxes", "face_valid", "cond_emb", "target_emb", "landmarks", "lm_valid", "identity", "bank_id"):
        out[k] = torch.from_numpy(np.stack([s[k] for s in samples]))
    for k in ("ref_crops", "siglip", "ref_valid"):  # SigLIP runs only
        if k in samples[0]:
            out[k] = torch.from_numpy(np.stack([s[k] for s in samples]))
    out["position"] = torch.tensor([s["position"] for s in samples], dtype=torch.int64)
    out["paired"] = torch.tensor([s["paired"] for s in samples])
    for k in ("caption", "key"):
        out[k] = [s[k] for s in samples]
    out["skips"] = [x for s in samples for x in s["skips"]]
    out["events"] = [x for s in samples for x in s["events"]]
    return out


def sample_noise(positions: torch.Tensor, shape: tuple[int, ...], seed: int, step_salt: str = "noise"
                 ) -> torch.Tensor:
    """Per-sample Gaussian noise keyed by stream position (independent of batch split and rank)."""
    import torch

    out = []
    for p in positions.tolist():
        g = torch.Generator().manual_seed(sample_seed(seed, p, step_salt))
        out.append(torch.randn(shape, generator=g))
    return torch.stack(out)
