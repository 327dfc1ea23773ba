"""Reference bank: per-identity ArcFace embeddings, used as the InfoNCE negative pool and for paired sampling.

Stored as one safetensors file (no pickles): ``embeddings`` (E, D) float32 raw embeddings, ``identity``
(E,) int64 index into the names, ``source_hash`` (E,) int64 (first 8 bytes of sha1 of the image key, so a
paired reference is never the target image itself); metadata ``names`` (JSON list) and ``format``.
Built from the official ``REF_DIR/<name>/<stem>.{jpg,json,npy}`` layout and/or from training records with
identified faces, with at most ``max_per_identity`` entries per identity (released: 200).
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from multiid_bench.errors import BadInputError, MissingDataError

from .data import UNKNOWN_NAMES, RecordError, open_source, read_npy_payload

if TYPE_CHECKING:
    import torch

__all__ = ["ReferenceBank", "build_reference_bank", "key_hash"]

logger = logging.getLogger(__name__)
BANK_FORMAT = "multiid-bench/reference-bank/v1"


def key_hash(key: str) -> int:
    """Stable signed 63-bit hash of an image key."""
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "little") >> 1


@dataclass
class ReferenceBank:
    """In-memory bank; ``offsets[i]:offsets[i+1]`` are the rows of identity ``names[i]``."""

    names: list[str]
    embeddings: np.ndarray
    identity: np.ndarray
    source_hash: np.ndarray

    def __post_init__(self) -> None:
        order = np.argsort(self.identity, kind="stable")
        self.embeddings, self.identity = self.embeddings[order], self.identity[order]
        self.source_hash = self.source_hash[order]
        counts = np.bincount(self.identity, minlength=len(self.names))
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.index = {n: i for i, n in enumerate(self.names)}
        self._normed = self.embeddings / np.maximum(np.linalg.norm(self.embeddings, axis=1, keepdims=True), 1e-12)

    def __len__(self) -> int:
        return len(self.embeddings)

    def identity_id(self, name: str) -> int:
        """Bank index of ``name`` or −1 when it is not a bank identity (then every bank identity is a negative)."""
        return self.index.get(name, -1) if name.lower() not in UNKNOWN_NAMES else -1

    def save(self, path: str | Path) -> Path:
        from safetensors.numpy import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"embeddings": np.ascontiguousarray(self.embeddings, np.float32),
                   "identity": self.identity.astype(np.int64), "source_hash": self.source_hash.astype(np.int64)},
                  str(path), metadata={"format": BANK_FORMAT, "names": json.dumps(self.names)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReferenceBank:
        from safetensors import safe_open

        path = Path(path)
        if not path.exists():
            raise MissingDataError(f"reference bank {path} not found; build it with "
                                   "'mbench train build-bank --ref-dir REF_DIR --out {path}'")
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            if meta.get("format") != BANK_FORMAT:
                raise BadInputError(f"{path}: not a reference bank (format {meta.get('format')!r})")
            arrays = {k: f.get_tensor(k) for k in ("embeddings", "identity", "source_hash")}
        return cls(json.loads(meta["names"]), arrays["embeddings"].astype(np.float32), arrays["identity"],
                   arrays["source_hash"])

    def sample_negatives(self, identity_ids: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
        """(M, K, D) negatives: K identities drawn with replacement among bank identities other than each
        query's own (all of them when its id is −1), one random embedding of each (spec §3.4)."""
        import torch

        n_ids = len(self.names)
        own = identity_ids.cpu().long()
        if n_ids < 2:
            raise BadInputError(f"reference bank has {n_ids} identities; extended negatives need at least 2")
        known = own >= 0
        r = torch.randint(0, n_ids - 1, (len(own), k), generator=generator)
        r_all = torch.randint(0, n_ids, (len(own), k), generator=generator)
        ids = torch.where(known[:, None], r + (r >= own[:, None]).long(), r_all)
        offsets = torch.from_numpy(self.offsets)
        counts = offsets[ids + 1] - offsets[ids]
        pick = (torch.rand(ids.shape, generator=generator, dtype=torch.float64) * counts).long()
        rows = offsets[ids] + torch.minimum(pick, counts - 1)
        return torch.from_numpy(self.embeddings)[rows]

    def pick_reference(self, name: str, target_embedding: np.ndarray, rng: np.random.Generator, *,
                       exclude_hash: int, min_sim: float, max_sim: float) -> np.ndarray | None:
        """A paired reference embedding for ``name``: a random bank entry of that identity (not the target image)
        whose cosine to *this* face's GT embedding lies in [min_sim, max_sim]; None when there is none.

        The released sampler scored candidates against any face of the target (spec §6.2.5) and stopped at
        the first above 0.8, favouring near-duplicates; here the band is explicit.
        """
        i = self.identity_id(name)
        if i < 0:
            return None
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        cand = np.arange(lo, hi)[self.source_hash[lo:hi] != exclude_hash]
        if len(cand) == 0:
            return None
        t = target_embedding / max(float(np.linalg.norm(target_embedding)), 1e-12)
        sims = self._normed[cand] @ t
        ok = cand[(sims >= min_sim) & (sims <= max_sim)]
        return None if len(ok) == 0 else self.embeddings[int(rng.choice(ok))]


def _from_ref_dir(ref_dir: Path) -> Iterable[tuple[str, str, np.ndarray]]:
    for person in sorted(p for p in ref_dir.iterdir() if p.is_dir()):
        for npy in sorted(person.glob("*.npy")):
            try:
                payload = read_npy_payload(npy.read_bytes())
                emb = payload.get("embeddings", payload.get("embedding")) if isinstance(payload, dict) else payload
                emb = np.asarray(emb, np.float32).reshape(-1, np.asarray(emb).shape[-1])
            except Exception as exc:  # any unreadable reference is skipped, never fatal
                logger.warning("reference %s skipped: %s", npy, exc)
                continue
            yield person.name, f"{person.name}/{npy.stem}", emb[0]


def build_reference_bank(*, ref_dir: str | Path | None = None, data_paths: Iterable[str | Path] = (),
                         max_per_identity: int = 200, seed: int = 0) -> ReferenceBank:
    """Collect embeddings per identity and keep a seeded random subset of ≤ ``max_per_identity`` each."""
    per_name: dict[str, list[tuple[int, np.ndarray]]] = {}
    if ref_dir is not None:
        ref_dir = Path(ref_dir)
        if not ref_dir.is_dir():
            raise MissingDataError(f"reference folder {ref_dir} not found (MultiID-2M: untar ref/tars into it)")
        for name, key, emb in _from_ref_dir(ref_dir):
            per_name.setdefault(name, []).append((key_hash(key), emb))
    for path in data_paths:
        src = open_source(path)
        for i in range(len(src)):
            try:
                rec = src.read(i)
            except RecordError as exc:
                logger.warning("bank: %s", exc)
                continue
            for name, emb in zip(rec.names, rec.embeddings):
                if name.lower() not in UNKNOWN_NAMES and not name.startswith("person_"):
                    per_name.setdefault(name, []).append((key_hash(rec.key), emb))
    if not per_name:
        raise MissingDataError("no identified reference embeddings found for the bank")
    rng = np.random.default_rng(seed)
    names = sorted(per_name)
    embs, ids, hashes = [], [], []
    for i, name in enumerate(names):
        rows = per_name[name]
        keep = rng.permutation(len(rows))[:max_per_identity]
        for j in sorted(keep):
            hashes.append(rows[j][0])
            embs.append(rows[j][1])
            ids.append(i)
    logger.info("reference bank: %d identities, %d embeddings", len(names), len(embs))
    return ReferenceBank(names, np.stack(embs).astype(np.float32), np.asarray(ids, np.int64),
                         np.asarray(hashes, np.int64))
