"""A view of one case row (:data:`multiid_bench.runner.run_folder.CaseRow`) for the report, the correlation
and the gallery; absent fields render as "not recorded".

- images: ``images: {generated, gt, refs: [...]}``, each a path or the runner's ``{"path", "sha256", ...}``;
- detected faces: ``detections`` (or ``faces``) as ``{detector: {view: [face, ...]}}``, a face being
  ``{"box": [x1, y1, x2, y2], "score": s, ...}``, views ``generated``, ``gt`` and ``refs: [[face, ...] | None]``
  (or ``ref_0``, ``ref_1`` ...);
- metrics (only ids with a metric card): ``scores: {protocol: {face_model: {metric: value}}}`` ->
  ``metric.face_model``, and ``general: {metric: value}`` -> ``metric``;
- prompt: ``prompt`` or the generation record's; GT boxes: ``boxes``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from multiid_bench.metrics.cards import CARDS
from multiid_bench.runner import run_folder

__all__ = ["CaseView", "case_view", "ref_label"]


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
    #: per reference: the identity the bench names, else the file it was cropped from, else ""
    ref_labels: list[str] = field(default_factory=list)


def _path(value: Any, base: Path, *, generated: bool = False) -> Path | None:
    """A recorded image path (a string, or the runner's ``{"path": ..., "sha256": ...}``).

    Relative paths are tried against the run directory first, then the working directory. A generated
    image recorded relative to the directory the run was started from (``runs/x/images/c.png``) is found in
    the run folder's own ``images/`` from any working directory.
    """
    if isinstance(value, Mapping):
        value = value.get("path")
    if not value or not isinstance(value, (str, Path)):
        return None
    p = Path(value)
    if p.is_absolute():
        return p
    if generated and not (base / p).exists() and p.parent.name == run_folder.IMAGES_DIR \
            and (base / run_folder.IMAGES_DIR / p.name).is_file():
        return base / run_folder.IMAGES_DIR / p.name
    return base / p if (base / p).exists() or not p.exists() else p


def ref_label(ref: Any) -> str:
    """What a reader calls a reference: ``identity`` (the bench's name for the person), else the ``source``
    file a prepared crop was cut from (the runner writes both); empty when the row states neither."""
    if isinstance(ref, Mapping):
        if ref.get("identity"):
            return str(ref["identity"])
        if ref.get("source"):
            return Path(str(ref["source"])).name
    return ""


def _number(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _faces(row: Mapping[str, Any]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{view: {detector: faces}}`` from the row's ``{detector: {view: faces}}``."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for det, views in (row.get("detections") or row.get("faces") or {}).items():
        for view, faces in (views or {}).items():
            for name, fs in ([(f"ref_{j}", f) for j, f in enumerate(faces)] if view == "refs" else [(view, faces)]):
                if isinstance(fs, list):  # None: an unreadable image
                    out.setdefault(name, {})[det] = [dict(f) for f in fs]
    return out


def _metrics(row: Mapping[str, Any], protocol: str) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for model, vals in ((row.get("scores") or {}).get(protocol) or {}).items():
        out.update({f"{k}.{model}": v for k, v in vals.items() if k in CARDS and _number(v)})
    out.update({k: v for k, v in (row.get("general") or {}).items() if k in CARDS and _number(v)})
    return {k: None if v is None else float(v) for k, v in out.items()}


def case_view(row: Mapping[str, Any], base: Path, protocol: str = "paper") -> CaseView:
    """Normalise one row; relative image paths are resolved against ``base`` (the run directory)."""
    images = row.get("images") or {}
    refs = [r for r in images.get("refs") or [] if _path(r, base) is not None]
    return CaseView(
        id=str(row.get("case_id", row.get("id", "?"))), subset=str(row.get("subset", "")),
        status=str(row.get("status", "unknown")), reason=str(row.get("reason") or ""),
        prompt=str(row.get("prompt") or (row.get("generation") or {}).get("prompt") or ""),
        generated=_path(images.get("generated"), base, generated=True), gt=_path(images.get("gt"), base),
        refs=[_path(r, base) for r in refs],  # type: ignore[misc]
        ref_pads=[float(r.get("pad_ratio") or 1.0) if isinstance(r, Mapping) else 1.0 for r in refs],
        ref_labels=[ref_label(r) for r in refs],
        faces=_faces(row),
        gt_boxes=[list(map(float, b)) for b in row.get("boxes") or [] if isinstance(b, (list, tuple)) and len(b) == 4],
        metrics=_metrics(row, protocol),
    )


def case_values(rows: Sequence[Mapping[str, Any]], run_dir: Any, protocol: str, subset: str,
                key: str) -> dict[str, float]:
    """Per-case values of ``key`` (``sim_gt.arcface``, ``clip_t``; ``<metric>.average`` = mean over the face
    models with a value in that case) for the cases of ``subset`` (``all``: every case); missing values skipped."""
    base, _, fm = key.partition(".")
    out: dict[str, float] = {}
    for row in rows:
        c = case_view(row, run_dir, protocol)
        if subset != "all" and c.subset != subset:
            continue
        if fm == "average":
            vals = [v for k, v in c.metrics.items() if k.split(".")[0] == base and k != key and v is not None]
            v = sum(vals) / len(vals) if vals else None
        else:
            v = c.metrics.get(key)
        if v is not None and not math.isnan(v):
            out[c.id] = float(v)
    return out
