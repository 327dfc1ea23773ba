"""Generation-quality scorers: CLIP-I / CLIP-T (open_clip), aesthetic v2.5 (SigLIP + MLP), FID (Inception).

Each scorer resolves its weights through :mod:`multiid_bench.weights` (missing weights raise
``MissingWeightsError``: the runner then reports that metric as missing, never 0), encodes images in
batches under inference mode, and leaves the metric to pure numpy functions on (cached) features::

    from multiid_bench.scorers import get_scorer, clip_i_scores
    clip = get_scorer("clip")            # ViT-B-16, OpenAI weights
    clip.load("cuda")
    gen, gt = clip.encode_images(generated), clip.encode_images(gt_photos)
    clip_i_scores(gen, gt)               # raw cosines in [-1, 1]

Importing this package imports no torch; models load in ``load``.
"""
from __future__ import annotations

import importlib
from typing import Any

from multiid_bench.errors import ConfigError
from multiid_bench.scorers.aesthetic import AestheticScorer
from multiid_bench.scorers.base import ImageLike, ImageScorer, ScorerCard, as_rgb_image, paired_cosine
from multiid_bench.scorers.clip import ClipScorer, clip_i_scores, clip_t_scores
from multiid_bench.scorers.fid import FidScorer, feature_statistics, fid_from_features, frechet_distance

__all__ = [
    "METRIC_SCORERS",
    "SCORERS",
    "AestheticScorer",
    "ClipScorer",
    "FidScorer",
    "ImageLike",
    "ImageScorer",
    "ScorerCard",
    "as_rgb_image",
    "clip_i_scores",
    "clip_t_scores",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "get_scorer",
    "list_scorers",
    "paired_cosine",
]

#: scorer name -> "module:class"; resolved on use.
SCORERS: dict[str, str] = {
    "clip": "multiid_bench.scorers.clip:ClipScorer",
    "aesthetic": "multiid_bench.scorers.aesthetic:AestheticScorer",
    "fid": "multiid_bench.scorers.fid:FidScorer",
}
#: metric id (multiid_bench.metrics.cards) -> the scorer that produces it.
METRIC_SCORERS: dict[str, str] = {"clip_i": "clip", "clip_t": "clip", "aesthetic": "aesthetic", "fid": "fid"}


def list_scorers() -> list[str]:
    """Names accepted by :func:`get_scorer`, sorted."""
    return sorted(SCORERS)


def get_scorer(name: str, **kwargs: Any) -> ImageScorer:
    """A new (not yet loaded) scorer by name or by metric id (``"clip_t"`` gives the CLIP scorer).

    Raises:
        ConfigError: unknown name, with close matches.
    """
    key = METRIC_SCORERS.get(name, name)
    if key not in SCORERS:
        import difflib

        close = difflib.get_close_matches(name, list(SCORERS) + list(METRIC_SCORERS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown scorer {name!r}.{hint} Known: {', '.join(list_scorers())}")
    module, attr = SCORERS[key].split(":")
    return getattr(importlib.import_module(module), attr)(**kwargs)

