"""Pure-numpy metric core: identity metrics, aggregation statistics and metric cards."""
from __future__ import annotations

from multiid_bench.metrics.cards import CARDS, FACE_MODEL_METRICS, MetricCard, get_card
from multiid_bench.metrics.identity import (
    IdentityScores,
    compute_copy_paste,
    cosine_matrix,
    identity_scores,
    match_faces,
)
from multiid_bench.metrics.stats import (
    COPY_PASTE_FILTERS,
    CopyPasteFilter,
    Summary,
    bootstrap_ci,
    iqr_summary,
    plain_mean,
    summarize,
    trimmed_mean,
)

__all__ = [
    "CARDS",
    "COPY_PASTE_FILTERS",
    "FACE_MODEL_METRICS",
    "CopyPasteFilter",
    "IdentityScores",
    "MetricCard",
    "Summary",
    "bootstrap_ci",
    "compute_copy_paste",
    "cosine_matrix",
    "get_card",
    "identity_scores",
    "iqr_summary",
    "match_faces",
    "plain_mean",
    "summarize",
    "trimmed_mean",
]
