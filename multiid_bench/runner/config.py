"""The resolved configuration of one evaluation run: every knob that can move a number, as data.

It is written into ``results.json`` and ``run.json``; a resumed or sharded run must resolve to the same
fingerprint (:meth:`RunConfig.fingerprint`) or it refuses to mix its rows with the old ones.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Mapping, get_args

from multiid_bench.errors import ConfigError

__all__ = ["PROTOCOLS", "REF_SOURCES", "Protocol", "RunConfig"]

Protocol = Literal["paper", "strict"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
RefSource = Literal["prepared", "raw"]
REF_SOURCES: tuple[str, ...] = get_args(RefSource)

# Fields that only change speed, placement or the headline choice: they never change a per-case row,
# so a run may be resumed or sharded with different values.
_NOT_FINGERPRINTED = frozenset(
    {
        "protocol", "device", "batch_size", "chunk_cases", "shard_index", "shard_count", "limit", "subsets",
        "cache_dir", "offline",
    }
)


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines an evaluation run.

    Attributes:
        model: adapter name (``ground-truth``, ``withanyone``...) or ``images`` for ``mbench score``.
        bench: bench id, path or ``demo``.
        subsets: subsets to evaluate (``None`` = all).
        limit: only the first ``limit`` cases (then the run is not reportable).
        protocol: headline protocol; both are always computed and written.
        profile: face profile name (``paper`` or ``offline``).
        device / batch_size: where and how many faces per forward pass (speed only).
        chunk_cases: cases decoded/detected/embedded together (speed only; rows are identical).
        seed: global generation seed; per-case seeds derive from it and the case id.
        ref_source: ``prepared`` = tight square face crops (paper section 1.3), ``raw`` = dataset refs.
        ref_pad_ratio: references are black-padded to this ratio before detection (1.5 as the paper; 1 = off).
        cp_eps: angle (rad) under which GT and reference count as the same face (copy-paste = 0).
        paper_norm_eps: the official ``|x| + 1e-6`` normalisation inside copy-paste (paper protocol).
        paper_pixels: ``official`` = the paper protocol scores JPEG-q75 round trips of the images as the
            official pipeline stored them (generated 1x unless already JPEG, GT 2x, references 1x; none for an
            official folder, whose files are those bytes); ``as-given`` = the files as they are (strict always).
        iqr_k: IQR multiplier of the paper's trimmed mean.
        bootstrap_resamples / bootstrap_seed: strict protocol's percentile bootstrap CI.
        strict_missing_score: Sim(GT)/Sim(Ref) given to an identity whose face is missing (strict).
        strict_iou_min: a detected GT face belongs to a GT box when IoU >= this (strict).
        scorers: compute CLIP-I/CLIP-T/aesthetic when the scorers and their weights exist.
        shard_index / shard_count: this process's share of the cases.
        judge: VLM-judge settings (OmniContext PF/SC/Overall; ``multiid_bench.judge.settings``), or
            None for no judge. Fingerprinted: another judge, revision or prompt variant is another run.
        model_fingerprint: a Python function model's code/closure/``version=`` hash
            (:func:`multiid_bench.runner.fingerprint.callable_fingerprint`); None for adapters and images.
            Fingerprinted: a changed function is another run, refused on resume.
    """

    model: str
    bench: str = "demo"
    subsets: tuple[str, ...] | None = None
    limit: int | None = None
    protocol: Protocol = "paper"
    profile: str = "paper"
    device: str = "cpu"
    batch_size: int = 32
    chunk_cases: int = 8
    seed: int = 0
    ref_source: RefSource = "prepared"
    ref_pad_ratio: float = 1.5
    cp_eps: float = 1e-6
    paper_norm_eps: float = 1e-6
    paper_pixels: str = "official"
    iqr_k: float = 1.5
    bootstrap_resamples: int = 2000
    bootstrap_seed: int = 0
    strict_missing_score: float = 0.0
    strict_iou_min: float = 0.3
    scorers: bool = True
    cache_dir: str | None = None
    offline: bool | None = None
    shard_index: int = 0
    shard_count: int = 1
    adapter_settings: Mapping[str, Any] = field(default_factory=dict)
    judge: Mapping[str, Any] | None = None
    model_fingerprint: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol (--protocol) must be one of {PROTOCOLS}, got {self.protocol!r}")
        if self.ref_source not in REF_SOURCES:
            raise ConfigError(f"ref_source (--ref-source) must be one of {REF_SOURCES}, got {self.ref_source!r}")
        if self.subsets is not None:
            from multiid_bench.data.omnicontext import SUBSET_NAMES, resolve_subsets

            bad = [s for s in self.subsets if s not in ("p1", "p2", "p3") and s not in SUBSET_NAMES]
            if bad or not self.subsets:
                raise ConfigError(f"subsets (--subset) take p1, p2, p3 (MultiID-Bench) or OmniContext names "
                                  f"({', '.join(SUBSET_NAMES)}); got {','.join(self.subsets) or '(empty)'}")
            omni = [s for s in self.subsets if s in SUBSET_NAMES]  # groups and presets expand to task types
            kept = [s for s in self.subsets if s not in SUBSET_NAMES] + list(resolve_subsets(omni))
            object.__setattr__(self, "subsets", tuple(sorted(set(kept))))
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit (--limit) must be >= 1, got {self.limit}")
        if self.batch_size < 1 or self.chunk_cases < 1:
            raise ConfigError(f"batch_size (--batch-size) and chunk_cases must be >= 1, got {self.batch_size}, "
                              f"{self.chunk_cases}")
        if self.paper_pixels not in ("official", "as-given"):
            raise ConfigError(f"paper_pixels must be 'official' or 'as-given', got {self.paper_pixels!r}")
        if self.ref_pad_ratio < 1.0:
            raise ConfigError(f"ref_pad_ratio must be >= 1 (1 = no padding), got {self.ref_pad_ratio}")
        if not 0 <= self.shard_index < self.shard_count:
            raise ConfigError(f"shard (--shard) {self.shard_index}/{self.shard_count}: need 0 <= i < n")
        if not 0.0 < self.strict_iou_min <= 1.0:
            raise ConfigError(f"strict_iou_min must be in (0, 1], got {self.strict_iou_min}")
        object.__setattr__(self, "adapter_settings", dict(self.adapter_settings))
        if self.judge is not None:
            object.__setattr__(self, "judge", dict(self.judge))

    @property
    def reportable(self) -> bool:
        """Runs made with ``--limit`` are smoke tests, never leaderboard rows."""
        return self.limit is None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["subsets"] = list(self.subsets) if self.subsets is not None else None
        d["adapter_settings"] = dict(self.adapter_settings)
        d["judge"] = dict(self.judge) if self.judge is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunConfig":
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if kw.get("subsets") is not None:
            kw["subsets"] = tuple(kw["subsets"])
        return cls(**kw)

    def fingerprint(self) -> str:
        """Hash of the fields that change per-case rows (not speed, placement, headline or limit)."""
        # a run without a judge (or function fingerprint) keeps the fingerprint it had before the field existed
        d = {k: v for k, v in self.to_dict().items()
             if k not in _NOT_FINGERPRINTED and not (k in ("judge", "model_fingerprint") and v is None)}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]
