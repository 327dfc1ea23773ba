"""Metric cards: the facts about each metric as data, read by tables, plots, arrows and ``compare``.

Bump a card's ``version`` on any change that can move its numbers, and add a CHANGELOG line.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

__all__ = ["CARDS", "FACE_MODEL_METRICS", "NEEDS_TWO_PERSONS", "MetricCard", "get_card", "undefined_for_subset"]


@dataclass(frozen=True)
class MetricCard:
    """Everything a consumer needs to show or compare one metric without reading its code."""

    id: str
    name: str
    version: str
    higher_is_better: bool
    range: tuple[float, float]
    scale: str
    definition: str
    inputs: tuple[str, ...]
    aggregation: str
    read_by: tuple[str, ...]

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["range"] = list(self.range)
        d["inputs"] = list(self.inputs)
        d["read_by"] = list(self.read_by)
        return d


_IDENTITY_AGG = (
    "per case: mean over Hungarian-matched face pairs; over cases: IQR(1.5)-trimmed mean "
    "(paper protocol) or plain mean with bootstrap 95% CI (strict protocol)"
)

# Judge scores depend on the judge model (default Qwen2.5-VL-7B-Instruct, pinned) and the prompt version, both
# recorded per run (results.json, scorer 'vlm-judge'): compare only rows with equal judge and prompt version.
_JUDGE_SCALE = "0-10 VLM judge score (judge model + prompt version per run)"
_JUDGE_AGG = (
    "plain mean per OmniContext task type over judged cases (unparseable answers are failures, counted, "
    "not 0); subset/average = unweighted mean of its task types' means"
)

CARDS: Mapping[str, MetricCard] = {
    c.id: c
    for c in (
        MetricCard(
            id="sim_gt", name="Sim(GT)", version="1.1.0", higher_is_better=True, range=(-1.0, 1.0),
            scale="raw cosine in [-1, 1], not x100",
            definition="paper eq. 1: cos(generated face, GT face) over Hungarian-matched pairs",
            inputs=("generated image", "GT image"), aggregation=_IDENTITY_AGG,
            read_by=("Table 1", "Table 2", "Table 5", "Figure 5 x-axis"),
        ),
        MetricCard(
            id="sim_ref", name="Sim(Ref)", version="1.1.0", higher_is_better=True, range=(-1.0, 1.0),
            scale="raw cosine in [-1, 1], not x100",
            definition="paper eq. 1: cos(generated face, reference face) over Hungarian-matched pairs",
            inputs=("generated image", "reference crops"), aggregation=_IDENTITY_AGG,
            read_by=("Table 1", "Table 2", "Table 5"),
        ),
        MetricCard(
            id="copy_paste", name="Copy-Paste", version="1.1.0", higher_is_better=False, range=(-1.0, 1.0),
            scale="angular ratio in [-1, 1]: +1 = the reference copied, -1 = the GT reproduced",
            definition="paper eq. 2: (theta(g,t) - theta(g,r)) / theta(t,r), 0 when theta(t,r) < 1e-6",
            inputs=("generated image", "GT image", "reference crops"),
            aggregation="per case: mean over faces, only when #generated == #GT == #reference; over every case "
            "with a value (what the official script prints; no Sim(GT) filter): " + _IDENTITY_AGG,
            read_by=("official eval.py summary", "Figure 5 y-axis"),
        ),
        MetricCard(
            id="copy_paste_ranked", name="Copy-Paste (Sim(GT)-filtered)", version="1.1.0", higher_is_better=False,
            range=(-1.0, 1.0), scale="as copy_paste",
            definition="copy_paste over the cases whose Sim(GT) passes the paper's ranking filter "
            "(Tables 1/2: > 0.40 single-person, > 0.35 multi-person); the column to compare with the paper's "
            "Copy-Paste values, whose captions say only those cases are considered",
            inputs=("generated image", "GT image", "reference crops"),
            aggregation="per case filter on that face model's Sim(GT) (strictly greater); over the kept cases: "
            "IQR(1.5)-trimmed mean (paper protocol) or plain mean with bootstrap 95% CI (strict protocol)",
            read_by=("Table 1 Copy-Paste", "Table 2 Copy-Paste"),
        ),
        MetricCard(
            id="copy_paste_ranked_fm", name="Copy-Paste (ranked, per face model)", version="1.1.0",
            higher_is_better=False, range=(-1.0, 1.0), scale="as copy_paste",
            definition="copy_paste over the cases whose Sim(GT) passes Table 5's per-model filter "
            "(ArcFace > 0.35, AdaFace > 0.30, FaceNet > 0.45)",
            inputs=("generated image", "GT image", "reference crops"),
            aggregation="paper protocol only: IQR(1.5)-trimmed mean over the kept cases",
            read_by=("Table 5 ranking marks",),
        ),
        MetricCard(
            id="blend_gt", name="Blending(GT)", version="1.2.0", higher_is_better=False, range=(-1.0, 1.0),
            scale="raw cosine in [-1, 1]",
            definition="paper eq. 8: mean cosine of the (generated, GT) face pairs not matched",
            inputs=("generated image", "GT image"), aggregation=_IDENTITY_AGG, read_by=("Table 2",),
        ),
        MetricCard(
            id="blend_ref", name="Blending(Ref)", version="1.2.0", higher_is_better=False, range=(-1.0, 1.0),
            scale="raw cosine in [-1, 1]",
            definition="paper eq. 8: mean cosine of the (generated, reference) face pairs not matched",
            inputs=("generated image", "reference crops"), aggregation=_IDENTITY_AGG, read_by=("Table 2",),
        ),
        MetricCard(
            id="clip_i", name="CLIP-I", version="1.0.0", higher_is_better=True, range=(-1.0, 1.0),
            scale="raw cosine in [-1, 1]: not x100, not clamped (not CLIPScore)",
            definition="cos(CLIP image(generated), CLIP image(GT)), ViT-B/16 OpenAI",
            inputs=("generated image", "GT image"), aggregation="IQR-trimmed mean over cases",
            read_by=("Table 1", "Table 2"),
        ),
        MetricCard(
            id="clip_t", name="CLIP-T", version="1.0.0", higher_is_better=True, range=(-1.0, 1.0),
            scale="raw cosine in [-1, 1]: not x100, not clamped (not CLIPScore)",
            definition="cos(CLIP image(generated), CLIP text(prompt)), 77-token truncation",
            inputs=("generated image", "prompt"), aggregation="IQR-trimmed mean over cases",
            read_by=("Table 1", "Table 2"),
        ),
        MetricCard(
            id="aesthetic", name="Aesthetic", version="1.0.0", higher_is_better=True, range=(1.0, 10.0),
            scale="aesthetic-predictor v2.5 logit, roughly 1-10",
            definition="SigLIP so400m-384 pooled, L2-normalised, v2.5 MLP head, bf16",
            inputs=("generated image",), aggregation="IQR-trimmed mean over cases",
            read_by=("Table 1", "Table 2"),
        ),
        MetricCard(
            id="fid", name="FID", version="1.0.0", higher_is_better=False, range=(0.0, float("inf")),
            scale="Frechet distance of Inception pool3 features; biased at a few hundred images",
            definition="FID(generated set, GT set), single input normalisation",
            inputs=("generated images", "GT images"), aggregation="one value per set",
            read_by=(),
        ),
        MetricCard(
            id="face_failure_rate", name="Face failure rate", version="1.0.0", higher_is_better=False,
            range=(0.0, 1.0), scale="fraction of expected identities without a matched generated face",
            definition="strict protocol: identities whose GT box has no detected generated face",
            inputs=("generated image", "GT boxes"), aggregation="pooled over identities",
            read_by=("strict protocol tables",),
        ),
        # OmniContext (WithAnyone Table 1b), judged by a VLM: multiid_bench/judge/scorer.py, docs/omnicontext.md
        MetricCard(
            id="prompt_following", name="PF", version="1.0.0", higher_is_better=True, range=(0.0, 10.0),
            scale=_JUDGE_SCALE,
            definition="OmniContext prompt following: the judge's 0-10 rating of how well the generated image "
            "fulfils the instruction, identities aside",
            inputs=("generated image", "input images", "instruction"), aggregation=_JUDGE_AGG,
            read_by=("Table 1b",),
        ),
        MetricCard(
            id="subject_consistency", name="SC", version="1.0.0", higher_is_better=True, range=(0.0, 10.0),
            scale=_JUDGE_SCALE,
            definition="OmniContext subject consistency: the judge's 0-10 rating of how well the subjects (and "
            "scene) of the input images are kept; the 'face-identity' prompt variant rates facial identity only "
            "(paper appendix I)",
            inputs=("generated image", "input images", "instruction"), aggregation=_JUDGE_AGG,
            read_by=("Table 1b",),
        ),
        MetricCard(
            id="overall", name="Overall", version="1.0.0", higher_is_better=True, range=(0.0, 10.0),
            scale=_JUDGE_SCALE,
            definition="OmniContext Overall: per case sqrt(PF * SC) (calculate_statistics.py), so the mean Overall "
            "is not sqrt(mean PF * mean SC)",
            inputs=("generated image", "input images", "instruction"), aggregation=_JUDGE_AGG,
            read_by=("Table 1b",),
        ),
    )
}

#: Metrics computed once per face model (the rest are model-independent).
FACE_MODEL_METRICS: tuple[str, ...] = ("sim_gt", "sim_ref", "copy_paste", "blend_gt", "blend_ref")


def get_card(metric_id: str) -> MetricCard:
    """Card for ``metric_id``; accepts ``"sim_gt.arcface"``-style ids (the part before the dot)."""
    base = metric_id.split(".", 1)[0]
    try:
        return CARDS[base]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(base, list(CARDS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown metric {metric_id!r}.{hint} Known: {', '.join(sorted(CARDS))}") from None


#: Metrics that need two persons: on MultiID-Bench's single-person subset (p1) they are N/A under both
#: protocols. The official code writes 0.0 there, which would rank first in a column the paper leaves
#: empty; readers (leaderboard, report, summary) show N/A instead. Issue 29.
NEEDS_TWO_PERSONS: tuple[str, ...] = ("blend_gt", "blend_ref")
SINGLE_PERSON_SUBSET = "p1"


def undefined_for_subset(metric_id: str, subset: str) -> bool:
    """True for a metric that cannot be measured on ``subset`` (Blending on single-person cases).

    Example:
        >>> undefined_for_subset("blend_ref.arcface", "p1"), undefined_for_subset("blend_ref", "p2")
        (True, False)
    """
    return metric_id.split(".", 1)[0] in NEEDS_TWO_PERSONS and subset == SINGLE_PERSON_SUBSET
