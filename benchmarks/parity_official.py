"""Parity harness: the official MultiID-Bench evaluation code against ours, on one folder, same face models.

Usage:
  python benchmarks/parity_official.py --official-repo ~/src/WithAnyone --images official_eval_dir \
      [--bench official_eval_dir] [--profile paper|offline] [--map arcface=dlib] [--out run_dir] [--json]

``--images`` is a folder in the layout the official evaluator reads (``<case>/out.jpg, ori.jpg, ref_k.jpg,
meta.json``; ``mbench`` writes one with ``multiid_bench.data.official.export_official``). ``--bench``
defaults to the same folder (read as an official folder bench).

What runs on each side:
* ours: ``mbench score --protocol paper`` on the folder (our run folder, ``results.json``, ``cases.jsonl``).
* official: the user's checkout's own ``eval.py`` and ``metrics/arcface_metric.py`` code (imported, not
  copied): ``BenchEval_Geo._load_primary_images``, ``_load_reference_images`` (1.5x padding),
  ``_calculate_face_metrics`` (Sim, Hungarian matching, ``copy_geo``, non-matched values, the stacking and
  ``None`` behaviour of ``get_multi_img_embeddings``), ``MetricCollectors.add_model_metrics`` (including
  its partial collection) and the summary statistics (IQR trimming, pooled average). Only the per-image
  face stage underneath (``FaceAnalysis.get``, facexlib's detector + alignment, the FaceNet / AdaFace
  forward) is served by *our* detectors, aligners and models with the weights of ``--profile`` — the same
  weights on both sides by construction; differences therefore come from everything above that stage.
  ``--map`` says which of our face models serves each official slot (default: the slot's own name; with the
  offline profile, ``arcface=dlib`` serves the ArcFace slot with MTCNN + dlib as a stand-in).

Not in CI: the official code is not ours to ship. Prints per-case and per-subset differences for every
metric and every inclusion mismatch (a value one side averages and the other does not).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

SLOTS = ("arcface", "facenet", "adaface")
# official metric name -> ours
METRICS = {"sim_ori": "sim_gt", "sim_ref": "sim_ref", "copy_geo": "copy_paste", "non_matched_ori": "blend_gt",
           "non_matched_ref": "blend_ref"}
_STAT_KEYS = {"sim_ori": "sim_gt", "sim_ref": "sim_ref", "copy_geo": "copy_paste", "non_matched_ori": "blend_gt",
              "non_matched_ref": "blend_ref"}
_LISTS = {"sim_ref": "sim_ref_list", "non_matched_ref": "unmatched_ref_list", "sim_ori": "sim_ori_list",
          "non_matched_ori": "unmatched_list", "copy_geo": "copy_geo_list"}


# ---- loading the official modules without their heavy model constructors -----------------------------
def _stub(name: str, **attrs: Any) -> None:
    if name in sys.modules:
        return
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)
    sys.modules[name] = mod


def load_official(repo: Path) -> tuple[Any, Any]:
    """Import the checkout's ``eval`` and ``metrics.arcface_metric`` (CLIP, aesthetic and FID stubbed)."""
    root = repo / "MultiID-Bench" if (repo / "MultiID-Bench" / "eval.py").is_file() else repo
    if not (root / "eval.py").is_file():
        raise SystemExit(f"{repo}: no MultiID-Bench/eval.py; pass the WithAnyone checkout (or its MultiID-Bench folder)")
    sys.path.insert(0, str(root))

    class _Colour:
        def __getattr__(self, _: str) -> str:
            return ""

    try:
        importlib.import_module("colorama")
    except ImportError:
        _stub("colorama", init=lambda *a, **k: None, Fore=_Colour(), Style=_Colour())
    try:
        importlib.import_module("AdaFace.inference")
    except ImportError:  # the official AdaFace submodule was removed upstream; only `to_input` is used here
        def to_input(rgb: np.ndarray) -> Any:  # AdaFace's own convention: BGR, (x / 255 - 0.5) / 0.5, NCHW
            import torch

            bgr = ((rgb[:, :, ::-1] / 255.0) - 0.5) / 0.5
            return torch.tensor(np.ascontiguousarray(bgr.transpose(2, 0, 1)))[None].float()

        _stub("AdaFace")
        _stub("AdaFace.inference", to_input=to_input,
              load_pretrained_model=lambda *_: (_ for _ in ()).throw(RuntimeError("served by the parity harness")))
    for name, cls in (("metrics.clip_metric", "CLIP_Metric"), ("metrics.aesthetic_metric", "Aesthetic_Metric"),
                      ("metrics.fid_metric", "FID_Metric")):
        _stub(name, **{cls: object})  # never constructed: the harness compares face metrics only
    with contextlib.redirect_stdout(io.StringIO()):
        arc = importlib.import_module("metrics.arcface_metric")
        ev = importlib.import_module("eval")
    return ev, arc


class _OpenCV4:
    """``cv2`` as the official run had it (opencv-python 4.x, unpinned in its requirements in 2025): OpenCV 5
    accepts a one-channel image in ``cvtColor(..., COLOR_RGB2BGR)``, 4.x raises -- which is what made grayscale
    GT photos crash the official evaluation (eval-protocol 3.1)."""

    def __init__(self, cv2: Any) -> None:
        self._cv2 = cv2

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cv2, name)

    def cvtColor(self, src: Any, code: int, *args: Any) -> Any:
        if np.ndim(src) == 2 and code in (self._cv2.COLOR_RGB2BGR, self._cv2.COLOR_BGR2RGB):
            raise self._cv2.error("OpenCV 4.x: Invalid number of channels in input image: 'VScn::contains(scn)' "
                                  "where 'scn' is 1")
        return self._cv2.cvtColor(src, code, *args)


def emulate_opencv4(arc: Any) -> str:
    """Give the official module OpenCV 4.x channel checks when the installed OpenCV is newer."""
    import cv2

    if int(cv2.__version__.split(".")[0]) >= 5:
        arc.cv2 = _OpenCV4(cv2)
        return f"installed OpenCV {cv2.__version__}; official code given OpenCV 4.x channel checks"
    return f"installed OpenCV {cv2.__version__}"


# ---- our face stage behind the official per-image interfaces --------------------------------------------
class FaceStage:
    """Detect, align and embed with one of our profile entries; memoised per image content."""

    def __init__(self, entry: Any, device: str, cache_dir: str | None, offline: bool | None) -> None:
        from multiid_bench.faces import load_detector, load_face_model

        self.entry = entry
        self.det = load_detector(entry.detector, device=device, cache_dir=cache_dir, offline=offline)
        self.model = load_face_model(entry.model, device=device, cache_dir=cache_dir, offline=offline)
        self._memo: dict[str, np.ndarray] = {}

    def embeddings(self, rgb: np.ndarray) -> np.ndarray:
        from multiid_bench.faces.align import align_faces

        key = hashlib.sha256(rgb.tobytes() + str(rgb.shape).encode()).hexdigest()
        if key not in self._memo:
            faces = self.det.detect([np.ascontiguousarray(rgb)])[0]
            crops = align_faces(rgb, faces, self.entry.template, self.model.card.crop_size)
            self._memo[key] = self.model.embed(crops) if len(faces) else np.zeros((0, self.model.card.embedding_dim),
                                                                                 np.float32)
        return self._memo[key]


class _ArcFaceApp:
    """``insightface.app.FaceAnalysis.get(bgr)``: faces (with ``.embedding``) in detector-score order."""

    def __init__(self, stage: FaceStage) -> None:
        self.stage = stage

    def get(self, bgr: np.ndarray) -> list[Any]:
        return [types.SimpleNamespace(embedding=e) for e in self.stage.embeddings(np.ascontiguousarray(bgr[..., ::-1]))]


class _Helper:
    """facexlib ``FaceRestoreHelper``: ``cropped_faces`` are 1x1 BGR tokens carrying each face's index, which
    the slot's network below turns back into that face's embedding."""

    def __init__(self) -> None:
        self.rgb: np.ndarray | None = None
        self.cropped_faces: list[np.ndarray] = []
        self.count = 0

    def clean_all(self) -> None:
        self.rgb, self.cropped_faces = None, []

    def read_image(self, bgr: np.ndarray) -> None:
        self.rgb = np.ascontiguousarray(np.asarray(bgr)[..., ::-1])

    def get_face_landmarks_5(self, only_center_face: bool = False) -> int:
        return 0

    def align_warp_face(self) -> None:
        assert self.rgb is not None
        n = self.count_faces(self.rgb)
        self.cropped_faces = [np.full((1, 1, 3), i + 1, np.uint8) for i in range(n)]

    count_faces: Any = None


class _Net:
    """The slot's network: decodes the token of ``_Helper`` and returns that face's embedding (1, D)."""

    def __init__(self, stage: FaceStage, helper: _Helper, adaface: bool) -> None:
        self.stage, self.helper, self.adaface = stage, helper, adaface

    def __call__(self, x: Any) -> Any:
        import torch

        v = float(x.flatten()[0])
        index = round((v * 0.5 + 0.5) * 255) - 1 if self.adaface else round(v * 255) - 1
        emb = torch.from_numpy(self.stage.embeddings(self.helper.rgb)[index][None].astype(np.float32))
        return (emb, emb.norm(dim=1, keepdim=True)) if self.adaface else emb


def build_metrics(arc: Any, stages: dict[str, FaceStage]) -> Any:
    import torch.nn.functional as F

    m = object.__new__(arc.ArcFace_Metrics)
    m.device, m.cos, m.ref_dir = "cpu", F.cosine_similarity, None
    if "arcface" in stages:
        m.model = _ArcFaceApp(stages["arcface"])
    helper = _Helper()
    facex = [s for s in ("facenet", "adaface") if s in stages]
    if facex:
        first = stages[facex[0]]
        if any((stages[s].entry.detector, stages[s].entry.template) != (first.entry.detector, first.entry.template)
               for s in facex):
            raise SystemExit("facenet and adaface share one facexlib helper officially: map them to models with the "
                             "same detector and template")
        helper.count_faces = lambda rgb: first.embeddings(rgb).shape[0]
    m.face_helper = helper
    if "facenet" in stages:
        m.facenet_model = _Net(stages["facenet"], helper, adaface=False)
    if "adaface" in stages:
        m.adaface_model = _Net(stages["adaface"], helper, adaface=True)
    return m


# ---- the official driver (eval.py BenchEval_Geo.__call__, steps 2-6, face metrics only) ------------------
def _evaluator(ev: Any, metrics: Any, subset: str) -> Any:
    b = object.__new__(ev.BenchEval_Geo)
    refs = ["ref_0.jpg"] if subset == "p1" else ["ref_0.jpg", "ref_1.jpg"] if subset == "p2" else [
        "ref_0.jpg", "ref_1.jpg", "ref_2.jpg", "ref_3.jpg"]
    refs += [None] * (4 - len(refs))
    b.metrics, b.padding, b.ori_flag, b.name_flag = metrics, True, True, False
    b.ori_file_name, b.output_file_name = "ori.jpg", "out.jpg"
    b.ref_1_file_name, b.ref_2_file_name, b.ref_3_file_name, b.ref_4_file_name = refs
    b.ref_1_flag = True
    b.ref_2_flag, b.ref_3_flag, b.ref_4_flag = refs[1] is not None, refs[2] is not None, refs[3] is not None
    b.collectors = ev.MetricCollectors(use_original=True, use_names=False)
    return b


def run_official(ev: Any, metrics: Any, folder: Path, cases: dict[str, str], slots: list[str]) -> tuple[dict, dict]:
    """Per case ``{slot: {metric: value|None}}`` plus what was collected, and per subset the official summary."""
    per_case: dict[str, dict[str, Any]] = {}
    summaries: dict[str, Any] = {}
    by_subset: dict[str, list[str]] = {}
    for name, subset in sorted(cases.items()):
        by_subset.setdefault(subset, []).append(name)
    for subset, names in by_subset.items():
        b = _evaluator(ev, metrics, subset)
        for name in names:
            rec: dict[str, Any] = {"subset": subset, "values": {}, "collected": {}, "failed": None}
            per_case[name] = rec
            with contextlib.redirect_stdout(io.StringIO()):
                ori, out = b._load_primary_images(str(folder / name), name)
                refs, count = b._load_reference_images(str(folder / name))
            if not ori or not out or count == 0:
                rec["failed"] = "images or references missing"
                continue
            fm: dict[str, Any] = {}
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    for slot in slots:
                        fm[slot] = b._calculate_face_metrics(slot, out, ori, refs, None)
            except Exception as e:  # the official driver counts the case as failed
                rec["failed"] = f"{type(e).__name__}: {e}"[:160]
                continue
            for slot, mm in fm.items():
                rec["values"][slot] = {k: _case_value(mm.get(k)) for k in METRICS}
            if all(fm[s]["sim_ref"] is None for s in slots):
                rec["failed"] = "no Sim(Ref)"
                continue
            before = {s: {k: len(b.collectors.model_collectors[s][lst]) for k, lst in _LISTS.items()} for s in slots}
            try:
                for slot in slots:
                    b.collectors.add_model_metrics(slot, fm[slot], True, False)
            except Exception as e:
                rec["failed"] = f"partial collection: {type(e).__name__}: {e}"[:160]
            for s in slots:
                rec["collected"][s] = {k: len(b.collectors.model_collectors[s][lst]) > before[s][k]
                                       for k, lst in _LISTS.items()}
        with contextlib.redirect_stdout(io.StringIO()):
            summary = b._calculate_model_statistics()
            summary["average"] = b._calculate_average_model_statistics(summary)
        summaries[subset] = summary
    return per_case, summaries


def _case_value(v: Any) -> float | None:
    if v is None:
        return None
    return float(np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, dtype=np.float64).mean())


# ---- comparison --------------------------------------------------------------------------------------------
def compare(per_case: dict, summaries: dict, rows: dict, results: dict, slot_model: dict[str, str]) -> dict[str, Any]:
    excluded: dict[str, set[str]] = {}
    for e in results.get("excluded", {}).get("paper", []):
        excluded.setdefault(e["case_id"], set()).update(e["metrics"])
    case_diff: dict[str, float] = {}
    mismatches: list[str] = []
    for name, rec in per_case.items():
        row = rows.get(name)
        if row is None:
            mismatches.append(f"{name}: no row on our side")
            continue
        for slot, model in slot_model.items():
            ours = (row.get("scores") or {}).get("paper", {}).get(model) or {}
            theirs = rec["values"].get(slot, {})
            for om, key in METRICS.items():
                a, b = ours.get(key), theirs.get(om)
                if rec["failed"] is None or rec["values"]:
                    if (a is None) != (b is None) and slot in rec["values"]:
                        mismatches.append(f"{name} {key}.{model}: ours {a} official {b}")
                    elif a is not None and b is not None:
                        d = abs(a - b)
                        case_diff[f"{key}.{model}"] = max(case_diff.get(f"{key}.{model}", 0.0), d)
                collected_official = bool(rec["collected"].get(slot, {}).get(om)) and b is not None
                collected_ours = a is not None and f"{key}.{model}" not in excluded.get(name, set())
                if collected_official != collected_ours and not (key.startswith("blend") and slot_model_p1(rec)):
                    mismatches.append(f"{name} {key}.{model}: averaged by ours={collected_ours} "
                                      f"official={collected_official} ({rec['failed'] or 'collected'})")
    subset_diff: dict[str, float] = {}
    subset_values: list[tuple[str, str, float | None, float | None]] = []
    for subset, summary in summaries.items():
        block = results["metrics"]["paper"].get(subset, {})
        for slot, model in list(slot_model.items()) + [("average", "average")]:
            for om, key in _STAT_KEYS.items():
                theirs = (summary.get(slot) or {}).get(om, {}).get("mean")
                ours = (block.get(f"{key}.{model}") or {}).get("value")
                subset_values.append((subset, f"{key}.{model}", ours, theirs))
                if ours is not None and theirs is not None:
                    subset_diff[f"{key}.{model}"] = max(subset_diff.get(f"{key}.{model}", 0.0), abs(ours - theirs))
                elif (ours is None) != (theirs is None):
                    mismatches.append(f"subset {subset} {key}.{model}: ours {ours} official {theirs}")
    return {"per_case_max_abs_diff": case_diff, "per_subset_max_abs_diff": subset_diff,
            "mismatches": mismatches, "subset_values": subset_values,
            "cases": len(per_case), "official_failed": sum(1 for r in per_case.values() if r["failed"]),
            "ours_excluded": len(results.get("excluded", {}).get("paper", []))}


def slot_model_p1(rec: dict[str, Any]) -> bool:
    """p1: the official forces non-matched to 0.0 and we to 0.0 as well; collection is not at stake."""
    return rec["subset"] == "p1"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official-repo", required=True, type=Path)
    ap.add_argument("--images", required=True, type=Path, help="official-layout folder (<case>/out.jpg ...)")
    ap.add_argument("--bench", default=None, help="bench spec (default: the --images folder)")
    ap.add_argument("--profile", default="paper", choices=["paper", "offline"])
    ap.add_argument("--map", action="append", default=[], help="slot=model, e.g. arcface=dlib (repeatable)")
    ap.add_argument("--out", type=Path, default=None, help="our run folder (default: <images>/../parity-run)")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--offline", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--opencv-as-installed", action="store_true",
                    help="do not give the official code OpenCV 4.x's channel checks (see _OpenCV4)")
    args = ap.parse_args(argv)

    from multiid_bench.cli.main import main as mbench
    from multiid_bench.faces import get_profile

    prof = get_profile(args.profile)
    slot_model = dict(s.split("=", 1) for s in args.map) or {s: s for s in SLOTS if s in prof.models()}
    if not slot_model:
        raise SystemExit(f"profile {args.profile!r} has none of {SLOTS}; pass --map slot=model")
    slots = [s for s in SLOTS if s in slot_model]
    out = args.out or args.images.resolve().parent / "parity-run"
    cmd = ["score", "--images", str(args.images), "--layout", "official", "--bench", str(args.bench or args.images),
           "--profile", args.profile, "--protocol", "paper", "--no-scorers", "--ref-source", "raw",
           "--device", args.device, "--out", str(out)] + (["--cache-dir", args.cache_dir] if args.cache_dir else []) \
        + (["--offline"] if args.offline else [])
    try:
        mbench(cmd)
    except SystemExit as e:
        if e.code not in (0, 4, None):
            raise
    results = json.loads((out / "results.json").read_text())
    rows = {}
    for f in sorted(out.glob("cases*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            rows[r["case_id"]] = r
    ev, arc = load_official(args.official_repo)
    cv_note = emulate_opencv4(arc) if not args.opencv_as_installed else "OpenCV as installed"
    stages = {s: FaceStage(prof.entry(m), args.device, args.cache_dir, args.offline or None) for s, m in slot_model.items()}
    metrics = build_metrics(arc, stages)
    folder_of = {}
    for cid, r in rows.items():
        folder = Path((r.get("generation") or {}).get("path") or "").parent.name or cid
        folder_of[folder] = r["subset"]
    rows_by_folder = {Path((r.get("generation") or {}).get("path") or "").parent.name or cid: r
                      for cid, r in rows.items()}
    per_case, summaries = run_official(ev, metrics, args.images, folder_of, slots)
    res = compare(per_case, summaries, rows_by_folder, results, slot_model)
    res["opencv"] = cv_note
    if args.json:
        print(json.dumps(res, indent=2, default=str))
        return 0
    print(res["opencv"])
    print(f"cases: {res['cases']}; official failed/partial: {res['official_failed']}; "
          f"our paper exclusion records: {res['ours_excluded']}")
    print("per-case max |ours - official|:")
    for k, v in sorted(res["per_case_max_abs_diff"].items()):
        print(f"  {k:28s} {v:.3e}")
    print("per-subset max |ours - official| (reported means):")
    for k, v in sorted(res["per_subset_max_abs_diff"].items()):
        print(f"  {k:28s} {v:.3e}")
    print(f"inclusion/value mismatches: {len(res['mismatches'])}")
    for line in res["mismatches"][:40]:
        print("  " + line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
