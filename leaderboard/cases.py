"""A tolerant view of one ``cases.jsonl`` row for the report, the correlation and the gallery.

The runner owns the row format; this module reads the fields the report needs and tolerates absent
ones (an older or partial row still renders, with "not recorded" where a field is missing):

- id: ``case_id`` (runner) or ``id``; ``subset``; ``status`` (ok / failed / not_applicable); ``reason``;
- images: ``images: {generated, gt, refs: [...]}`` (each a path or the runner's ``{"path", "sha256"}``) or
  top-level ``generated`` / ``image`` / ``gt`` / ``refs``;
- detected faces: ``faces`` or ``detections``, either ``{detector: {view: [face, ...]}}`` or
  ``{view: {detector: [face, ...]}}``, a face being ``{"box": [x1, y1, x2, y2], "score": s, ...}``; views
  ``generated``, ``gt``, ``ref_0``, ``ref_1`` ... (or the runner's ``refs: [[face, ...] | None, ...]``);
- metrics (only ids with a metric card): ``scores: {protocol: {face_model: {metric: value}}}`` ->
  ``metric.face_model``, ``general: {metric: value}`` -> ``metric``, or a flat ``metrics: {key: value}``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from multiid_bench.metrics.cards import CARDS

__all__ = ["CaseView", "case_view"]

_GEN_VIEWS = ("generated", "gen", "output", "image")


@dataclass
class CaseView:
    id: str
    subset: str
    status: str
    reason: str
    prompt: str
    generated: Path | None
    gt: Path | None
    refs: list[Path]
    ref_pads: list[float] = field(default_factory=list)  # black padding the detector saw (runner's pad_ratio)
    faces: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)  # view -> detector -> faces
    gt_boxes: list[list[float]] = field(default_factory=list)
    metrics: dict[str, float | None] = field(default_factory=dict)


def _path(value: Any, base: Path) -> Path | None:
    """A recorded image path (a string, or the runner's ``{"path": ..., "sha256": ...}``).

    Relative paths are tried against the run directory first, then the working directory.
    """
    if isinstance(value, Mapping):
        value = value.get("path")
    if not value or not isinstance(value, (str, Path)):
        return None
    p = Path(value)
    if p.is_absolute():
        return p
    return base / p if (base / p).exists() or not p.exists() else p


def _view_name(name: str) -> str:
    return "generated" if name in _GEN_VIEWS else name


def _faces(row: Mapping[str, Any]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    raw = row.get("faces") or row.get("detections") or {}
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    if not isinstance(raw, Mapping):
        return out

    def put(view: str, det: str, faces: Any) -> None:
        if isinstance(faces, list) and all(isinstance(f, Mapping) and "box" in f for f in faces):
            out.setdefault(_view_name(view), {})[det] = [dict(f) for f in faces]

    for k1, v1 in raw.items():
        if not isinstance(v1, Mapping):
            if k1 == "refs" and isinstance(v1, list):
                for j, fs in enumerate(v1):
                    put(f"ref_{j}", "faces", fs)
            else:
                put(k1, "faces", v1)
            continue
        for k2, v2 in v1.items():
            # decide which level is the view: view names are generated/gt/ref_*/refs
            is_view_first = _view_name(k1) in ("generated", "gt") or k1.startswith("ref")
            view, det = (k1, k2) if is_view_first else (k2, k1)
            if view == "refs" and isinstance(v2, list):
                for j, fs in enumerate(v2):
                    put(f"ref_{j}", det, fs)  # None (unreadable reference) is skipped by put
            else:
                put(view, det, v2)
    return out


def _metrics(row: Mapping[str, Any], protocol: str) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    flat = row.get("metrics")
    if isinstance(flat, Mapping):
        for k, v in flat.items():
            if str(k).split(".")[0] in CARDS and (isinstance(v, (int, float)) and not isinstance(v, bool) or v is None):
                out[str(k)] = None if v is None else float(v)
    scores = row.get("scores")
    if isinstance(scores, Mapping):
        block = scores.get(protocol) or next((b for b in scores.values() if isinstance(b, Mapping)), {})
        for model, vals in (block or {}).items():
            if not isinstance(vals, Mapping):
                continue
            for metric, v in vals.items():
                if metric not in CARDS or isinstance(v, bool):
                    continue  # counts, pairs and per-face lists are not metrics
                if isinstance(v, (int, float)) or v is None:
                    out[f"{metric}.{model}"] = None if v is None else float(v)
    general = row.get("general")
    if isinstance(general, Mapping):
        for k, v in general.items():
            if k in CARDS and (isinstance(v, (int, float)) and not isinstance(v, bool) or v is None):
                out[str(k)] = None if v is None else float(v)
    return out


def case_view(row: Mapping[str, Any], base: Path, protocol: str = "paper") -> CaseView:
    """Normalise one row; relative image paths are resolved against ``base`` (the run directory)."""
    images = row.get("images") if isinstance(row.get("images"), Mapping) else {}
    gen = next((images.get(k) for k in _GEN_VIEWS if images.get(k)), None) or next(
        (row.get(k) for k in _GEN_VIEWS if isinstance(row.get(k), str)), None)
    refs = images.get("refs", row.get("refs", [])) or []
    refs = [r for r in refs if isinstance(r, (str, Path, Mapping))]
    boxes = row.get("boxes") or (row.get("case") or {}).get("boxes") or []
    return CaseView(
        id=str(row.get("case_id", row.get("id", "?"))),
        subset=str(row.get("subset", "")),
        status=str(row.get("status", "unknown")),
        reason=str(row.get("reason") or ""),
        prompt=str(row.get("prompt") or (row.get("case") or {}).get("prompt")
                   or (row.get("generation") or {}).get("prompt") or ""),
        generated=_path(gen, base),
        gt=_path(images.get("gt", row.get("gt")), base),
        refs=[p for p in (_path(r, base) for r in refs) if p is not None],
        ref_pads=[float(r.get("pad_ratio") or 1.0) if isinstance(r, Mapping) else 1.0
                  for r in refs if _path(r, base) is not None],
        faces=_faces(row),
        gt_boxes=[list(map(float, b)) for b in boxes if isinstance(b, (list, tuple)) and len(b) == 4],
        metrics=_metrics(row, protocol),
    )
