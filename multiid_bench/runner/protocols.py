"""Per-case identity scores under the two protocols, from faces and embeddings (no images, no I/O).

``paper`` reproduces what the official evaluation computes (eval-protocol sections 3.6, 4, 8):
all faces of the generated image and of the GT photo (bystanders included) are paired by a Hungarian
assignment on cosine, independently against the GT and against the references; the GT boxes are not
used; copy-paste needs equal face counts and divides by ``|x| + 1e-6``; a reference without a face
either voids the reference set (``all-or-none``, ArcFace's behaviour) or is dropped (``drop-missing``,
FaceNet/AdaFace's); Blending is forced to 0 on single-person cases.

``strict`` is ours (docs/protocols.md): the GT boxes say which GT face is which person, so each identity
is a known (GT face, reference face) pair; each generated face is assigned to at most one identity by a
single Hungarian assignment on its mean cosine to that identity's GT and reference faces, and that one
assignment is used for every metric. An identity left without a generated face is a *detection failure*:
its Sim(GT) and Sim(Ref) are ``missing_score`` (0 by default) and it has no copy-paste value. Cosines are
exact (no ``+ 1e-6``).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from multiid_bench.faces.types import box_iou
from multiid_bench.metrics.identity import compute_copy_paste, cosine_matrix, identity_scores, match_faces
from multiid_bench.runner.extract import FaceSet

__all__ = ["OFFICIAL_MODEL_ORDER", "REF_POLICIES", "box_iou", "paper_exclusions", "score_paper", "score_strict"]

#: How a reference image without a detectable face is treated under the paper protocol.
REF_POLICIES = ("all-or-none", "drop-missing")
# The faces package's names for the same two behaviours (multiid_bench.faces.profiles.REF_POLICIES).
_ALIASES = {"top_face": "all-or-none", "top_face_drop_missing": "drop-missing"}


def _policy(name: str) -> str:
    p = _ALIASES.get(name, name)
    if p not in REF_POLICIES:
        raise ValueError(f"unknown reference policy {name!r}; known: {REF_POLICIES} (+ aliases {sorted(_ALIASES)})")
    return p


def _empty(dim: int) -> np.ndarray:
    return np.zeros((0, dim), dtype=np.float64)


def score_paper(
    gen: FaceSet, gt: FaceSet | None, refs: Sequence[FaceSet], *, subset: str, ref_policy: str,
    cp_eps: float = 1e-6, norm_eps: float = 1e-6,
) -> dict[str, Any]:
    """Official semantics for one case and one face model; ``None`` values mean "excluded" (never 0)."""
    policy = _policy(ref_policy)
    dim = gen.emb.shape[1] if gen.emb.ndim == 2 else 0
    ref_rows = [r.emb[0] for r in refs if r.emb.shape[0] > 0]  # the highest-score face of each reference
    refs_without_face = [j for j, r in enumerate(refs) if r.emb.shape[0] == 0]
    if refs_without_face and policy == "all-or-none":
        ref_rows = []
    r = np.stack(ref_rows) if ref_rows else _empty(dim)
    t = gt.emb if gt is not None else _empty(dim)
    s = identity_scores(gen.emb, t, r, eps=cp_eps, norm_eps=norm_eps)
    out: dict[str, Any] = s.to_dict()
    if subset == "p1":  # the official p1 setup has no second reference slot: blending forced to 0.0
        out["blend_gt"] = 0.0 if s.sim_gt is not None else None
        out["blend_ref"] = 0.0 if s.sim_ref is not None else None
    # The smallest embedding norm bounds how far the |x| + 1e-6 normalisation moves copy-paste
    # (docs/protocols.md): ~ 2 * sqrt(norm_eps / norm_min) / theta(t, r) for an exact copy.
    norms = [float(np.linalg.norm(x, axis=1).min()) for x in (gen.emb, t, r) if x.shape[0]]
    out.update(n_gen=int(gen.emb.shape[0]), n_gt=int(t.shape[0]), n_ref=int(r.shape[0]),
               refs_without_face=refs_without_face, norm_min=min(norms) if norms else None,
               refs_with_several_faces=[j for j, x in enumerate(refs) if x.emb.shape[0] > 1], ref_policy=policy)
    return out


#: The official evaluator's face models in the order it computes and collects them (eval.py).
OFFICIAL_MODEL_ORDER = ("arcface", "facenet", "adaface")
#: Pillow modes whose array is ``(H, W, 3|4)``: the only ones the official face pipelines can read
#: (it opens images without ``.convert("RGB")`` and then calls ``cv2.cvtColor(..., RGB2BGR)``).
_OFFICIAL_READABLE_MODES = frozenset({"RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"})
_FACE_METRICS = ("sim_gt", "sim_ref", "copy_paste", "blend_gt", "blend_ref")
#: Per model, the order the official ``add_model_metrics`` appends values; a ``float(None)`` on a
#: blend value raises right after its Sim was appended (eval-protocol section 7, bug 10).
_COLLECT_ORDER = (("sim_ref", "blend_ref"), ("sim_gt", "blend_gt", "copy_paste"))


def _official_order(models: Sequence[str]) -> list[str]:
    return [m for m in OFFICIAL_MODEL_ORDER if m in models] + [m for m in models if m not in OFFICIAL_MODEL_ORDER]


def paper_exclusions(row: dict[str, Any], models: Sequence[str], general: Sequence[str] = ()) -> list[dict[str, Any]]:
    """What the official run loses of this case: ``[{case_id, metrics, reason}]`` (empty: nothing).

    ``metrics`` lists the keys (``sim_gt.arcface``, ``clip_t``, ...) that have a value in the row but
    that the official evaluation would not have collected. In the order the official code hits them:

    1. an exception while computing fails the whole case: the generated or GT image stored in a mode
       the official code cannot read (grayscale, palette, 16-bit); under a ``drop-missing`` model
       (FaceNet/AdaFace via facexlib) a reference with several faces, or no face in any reference;
    2. no face model produced Sim(Ref): the case counts as failed, its Sim(GT) and CLIP/aesthetic go too;
    3. multi-person cases (p2, p3; the official p1 setup forces blending to 0): a 1x1 similarity matrix
       leaves blending ``None`` and ``float(None)`` raises inside the collection loop, after the values
       collected so far (earlier models, and this model's Sim) were kept. The rest is lost.
    """
    scores: dict[str, Any] = (row.get("scores") or {}).get("paper") or {}
    gen_values = row.get("general") or {}
    order = _official_order([m for m in models if m in scores])

    def present(model_metrics: list[tuple[str, str]], with_general: bool) -> list[str]:
        keys = [f"{metric}.{m}" for m, metric in model_metrics if (scores.get(m) or {}).get(metric) is not None]
        return keys + ([g for g in general if gen_values.get(g) is not None] if with_general else [])

    def whole(reason: str) -> list[dict[str, Any]]:
        keys = present([(m, metric) for m in order for metric in _FACE_METRICS], True)
        return [{"case_id": str(row["case_id"]), "metrics": keys, "reason": reason}]

    images = row.get("images") or {}
    for which, label in (("generated", "generated image"), ("gt", "GT image")):
        mode = (images.get(which) or {}).get("mode")
        if mode is not None and mode not in _OFFICIAL_READABLE_MODES:
            return whole(f"{label} is stored in mode {mode}: the official code reads it without converting to "
                         "RGB and the case crashes (eval-protocol 3.1, bug 14)")
    for m in order:
        s = scores[m]
        if s.get("ref_policy") != "drop-missing":
            continue
        several = s.get("refs_with_several_faces") or []
        if several:
            return whole(f"{m}: reference {several[0] + 1} has several faces; the official facexlib path "
                         "cannot stack them and the case crashes for every model (eval-protocol 3.6)")
        if s.get("n_ref") == 0:
            return whole(f"{m}: no face found in any reference; the official facexlib path stacks an empty "
                         "list and the case crashes for every model (eval-protocol 3.6)")
    if not any(scores[m].get("sim_ref") is not None for m in order):
        return whole("no face model produced Sim(Ref): the official run counts the case as failed and drops "
                     "its Sim(GT) and CLIP/aesthetic values too (eval-protocol 2, step 6)")
    if str(row.get("subset")) == "p1":
        return []
    collected: list[tuple[str, str]] = []
    for i, m in enumerate(order):
        s = scores[m]
        for group in _COLLECT_ORDER:
            sim, blend = group[0], group[1]
            if s.get(sim) is None:
                continue
            if s.get(blend) is None:
                lost = [(m, x) for x in _FACE_METRICS if (m, x) not in collected and x != sim]
                lost += [(later, x) for later in order[i + 1:] for x in _FACE_METRICS]
                return [{"case_id": str(row["case_id"]), "metrics": present(lost, True),
                         "reason": f"{m}: a 1x1 similarity matrix leaves {blend} undefined; the official "
                                   "collection raises on float(None) after keeping the values before it and "
                                   "loses the rest of the case (eval-protocol 7, bug 10)"}]
            collected += [(m, x) for x in group]
    return []


def _gt_identity_faces(
    gt: FaceSet | None, refs: list[np.ndarray | None], boxes: Sequence[Sequence[float]], iou_min: float
) -> tuple[list[int | None], str]:
    """Index of the detected GT face of each identity (``None`` = unresolved) and how it was resolved."""
    k = len(refs)
    if gt is None or gt.emb.shape[0] == 0:
        return [None] * k, "no GT faces"
    if boxes:
        det_boxes = np.array([f["box"] for f in gt.faces], dtype=np.float64)
        gt_boxes = np.asarray(boxes, dtype=np.float64)
        iou = box_iou(gt_boxes, det_boxes)
        # Dataset boxes are often looser than a detector's: a detected face whose centre lies inside a
        # box also belongs to it. Centre-inside dominates the assignment, IoU breaks ties.
        cx = (det_boxes[:, 0] + det_boxes[:, 2]) / 2
        cy = (det_boxes[:, 1] + det_boxes[:, 3]) / 2
        inside = (
            (cx[None, :] >= gt_boxes[:, None, 0]) & (cx[None, :] <= gt_boxes[:, None, 2])
            & (cy[None, :] >= gt_boxes[:, None, 1]) & (cy[None, :] <= gt_boxes[:, None, 3])
        )
        rows, cols = match_faces(iou + inside.astype(np.float64))
        out: list[int | None] = [None] * k
        for j, i in zip(rows.tolist(), cols.tolist()):
            if inside[j, i] or iou[j, i] >= iou_min:
                out[j] = int(i)
        return out, "boxes"
    # No boxes (a user's own data): only an unambiguous GT (one face per identity) can be resolved.
    present = [j for j in range(k) if refs[j] is not None]
    if gt.emb.shape[0] != k or len(present) != k:
        return [None] * k, "no boxes and GT face count != persons"
    rows, cols = match_faces(cosine_matrix(np.stack([refs[j] for j in present]), gt.emb))
    out = [None] * k
    for j, i in zip(rows.tolist(), cols.tolist()):
        out[present[j]] = int(i)
    return out, "references (no boxes)"


def score_strict(
    gen: FaceSet, gt: FaceSet | None, refs: Sequence[FaceSet], boxes: Sequence[Sequence[float]], *,
    missing_score: float = 0.0, iou_min: float = 0.3, cp_eps: float = 1e-6,
) -> dict[str, Any]:
    """Identity-consistent scores for one case and one face model (see the module docstring)."""
    k = len(refs)
    ref_emb: list[np.ndarray | None] = [r.emb[0] if r.emb.shape[0] else None for r in refs]
    gt_idx, resolved_by = _gt_identity_faces(gt, ref_emb, boxes, iou_min)
    gt_emb: list[np.ndarray | None] = [gt.emb[i] if (gt is not None and i is not None) else None for i in gt_idx]
    usable = [j for j in range(k) if gt_emb[j] is not None or ref_emb[j] is not None]
    g = gen.emb.astype(np.float64)
    n = g.shape[0]

    assigned: dict[int, int] = {}
    if n and usable:
        score = np.zeros((n, len(usable)))
        for c, j in enumerate(usable):
            parts = [cosine_matrix(g, v[None, :])[:, 0] for v in (gt_emb[j], ref_emb[j]) if v is not None]
            score[:, c] = np.mean(parts, axis=0)
        rows, cols = match_faces(score)
        assigned = {usable[c]: int(i) for i, c in zip(rows.tolist(), cols.tolist())}

    identities = []
    for j in range(k):
        i = assigned.get(j)
        t, r = gt_emb[j], ref_emb[j]
        ident: dict[str, Any] = {"identity": j, "gen_face": i, "gt_face": gt_idx[j], "ref_face": 0 if r is not None else None,
                                 "missing": j in usable and i is None}
        ident["sim_gt"] = None if t is None else (missing_score if i is None else float(cosine_matrix(g[i : i + 1], t[None])[0, 0]))
        ident["sim_ref"] = None if r is None else (missing_score if i is None else float(cosine_matrix(g[i : i + 1], r[None])[0, 0]))
        ident["copy_paste"] = (
            float(compute_copy_paste(g[i], t, r, eps=cp_eps, norm_eps=0.0)) if (i is not None and t is not None and r is not None) else None
        )
        others_t = [gt_emb[m] for m in range(k) if m != j and gt_emb[m] is not None]
        others_r = [ref_emb[m] for m in range(k) if m != j and ref_emb[m] is not None]
        ident["blend_gt"] = float(cosine_matrix(g[i : i + 1], np.stack(others_t)).mean()) if (i is not None and others_t) else None
        ident["blend_ref"] = float(cosine_matrix(g[i : i + 1], np.stack(others_r)).mean()) if (i is not None and others_r) else None
        identities.append(ident)

    def mean_of(key: str) -> float | None:
        vals = [d[key] for d in identities if d[key] is not None]
        return float(np.mean(vals)) if vals else None

    missing = sum(1 for d in identities if d["missing"])
    return {
        "sim_gt": mean_of("sim_gt"), "sim_ref": mean_of("sim_ref"), "copy_paste": mean_of("copy_paste"),
        "blend_gt": mean_of("blend_gt"), "blend_ref": mean_of("blend_ref"),
        "expected": len(usable), "found": len(usable) - missing, "missing": missing,
        "unresolved": [j for j in range(k) if j not in usable], "gt_resolved_by": resolved_by,
        "n_gen": int(n), "identities": identities,
    }
