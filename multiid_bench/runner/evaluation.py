"""The evaluation runner: plan -> generate -> decode/detect/embed -> score -> append rows -> aggregate.

One call of :func:`run_evaluation` handles this process's shard of the bench:

1. load the bench (broken records become failed rows), select subsets/limit, take this shard's cases;
2. check the output folder: a previous run there must have the same config fingerprint, and every case
   that already has a row is skipped (resume);
3. per chunk of ``chunk_cases`` cases: get each generated image (adapter or folder), then run the face
   stage for all images of the chunk at once (:class:`~multiid_bench.runner.extract.FeatureExtractor`:
   each image decoded once, detected once per detector, embedded once per model, cached by content),
   score both protocols per case and append one row per case to ``cases[.shard].jsonl``;
4. when every planned case of every shard has a row, :func:`finalize` writes ``results.json``,
   ``summary.md`` and ``summary.csv`` from the rows alone.
"""
from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from multiid_bench.errors import stops_run
from multiid_bench.runner.cache import FeatureCache, default_cache_root
from multiid_bench.runner.config import RunConfig
from multiid_bench.runner.extract import FaceBackend, FaceSet, FeatureExtractor, ImageSpec, ViewResult, WorkCounters
from multiid_bench.runner.protocols import score_paper, score_strict
from multiid_bench.runner.provenance import utc_now
from multiid_bench.runner.run_folder import (
    MISSING_FACES, ROW_SCHEMA_VERSION, append_row, read_rows, repair_tail, rows_file, unique_record_ids, validate_row,
)
from multiid_bench.runner.shard import Shard, select_shard

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case
    from multiid_bench.data.loaders import BenchLoad
    from multiid_bench.runner.image_scores import GeneralScorers
    from multiid_bench.runner.sources import Generated, ImageSource

__all__ = ["RunOutcome", "evaluate_held", "run_evaluation", "score_chunk"]

log = logging.getLogger(__name__)

RowCallback = Callable[[Mapping[str, Any]], None]


@dataclass
class RunOutcome:
    """What one process did, and the results when the whole plan is complete."""

    out_dir: Path
    shard: Shard
    planned: int
    skipped: int
    rows_written: int
    failed_here: int
    complete: bool
    results: dict[str, Any] | None

    @property
    def exit_code(self) -> int:
        """:func:`multiid_bench.errors.run_exit_code`: 5 nothing evaluated, 4 some cases failed, else 0."""
        from multiid_bench.errors import run_exit_code

        return run_exit_code(self.results["counts"] if self.results else None, failed_here=self.failed_here)


def run_evaluation(
    config: RunConfig, out_dir: str | Path, source: "ImageSource", *, backends: Sequence[FaceBackend] | None = None,
    profile: Mapping[str, Any] | None = None, bench_load: "BenchLoad | None" = None,
    general: "GeneralScorers | None" = None, on_plan: Callable[[int, int], None] | None = None,
    on_row: RowCallback | None = None,
) -> RunOutcome:
    """Evaluate this process's shard into ``out_dir`` as its only writer (see :func:`evaluate_held`).

    The folder must be ours (:func:`~multiid_bench.runner.folder_lock.check_adoptable`) and is locked for
    this shard (:class:`~multiid_bench.runner.folder_lock.RunFolderLock`): a second process on the same
    folder and shard refuses at once, naming the holder.
    """
    from multiid_bench.runner.folder_lock import RunFolderLock, check_adoptable, shard_label

    out = Path(out_dir)
    check_adoptable(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with RunFolderLock(out, shard_label(Shard(config.shard_index, config.shard_count))):
            return evaluate_held(config, out, source, backends=backends, profile=profile, bench_load=bench_load,
                                 general=general, on_plan=on_plan, on_row=on_row)
    except BaseException:
        if created:  # refused before any work (a wrong bench, missing weights): leave no empty run folder behind
            _remove_if_only_locks(out)
        raise


def _remove_if_only_locks(out: Path) -> None:
    """Remove a folder this run created when it holds nothing but its lock files (never anything else)."""
    from multiid_bench.runner.run_folder import LOCK_STEM

    try:
        entries = list(out.iterdir())
        if any(not (p.is_file() and p.name.startswith(LOCK_STEM)) for p in entries):
            return
        for p in entries:
            p.unlink()
        out.rmdir()
    except OSError:  # best effort: a folder we cannot tidy is still a correct (empty) folder
        pass


def evaluate_held(
    config: RunConfig, out_dir: str | Path, source: "ImageSource", *, backends: Sequence[FaceBackend] | None = None,
    profile: Mapping[str, Any] | None = None, bench_load: "BenchLoad | None" = None,
    general: "GeneralScorers | None" = None, on_plan: Callable[[int, int], None] | None = None,
    on_row: RowCallback | None = None,
) -> RunOutcome:
    """Evaluate this process's shard into ``out_dir`` (resuming), then finalize if the plan is complete.

    Args:
        config: the resolved run configuration.
        out_dir: run folder (rows, images, results).
        source: where generated images come from (:mod:`multiid_bench.runner.sources`).
        backends / profile: face backends (default: built from ``config.profile``, after a weights
            preflight, before any model loads) and the profile dict recorded in results.
        bench_load: a pre-loaded bench (default: ``open_bench(config.bench)``).
        general: CLIP/aesthetic scorers (default: loaded when available, else reported missing).
        on_plan: called once with (cases this process will run, cases skipped as done).
        on_row: called after each row is durably written (progress bars; tests use it to interrupt).
    """
    started, t0 = utc_now(), time.perf_counter()
    out = Path(out_dir)  # created only once the weights, the bench and the settings have been checked
    shard = Shard(config.shard_index, config.shard_count)
    checked = None
    if backends is None:  # weights preflight first: exit 3 before any data or model is loaded
        from multiid_bench.runner.backends import check_profile

        checked = check_profile(config)
    if bench_load is None:
        from multiid_bench.data.loaders import open_bench

        bench_load = open_bench(config.bench, cache_dir=config.cache_dir, offline=config.offline)
    if backends is None:
        from multiid_bench.runner.backends import build_backends

        profile, backends = build_backends(config, checked)
    profile = dict(profile or {"name": config.profile})
    selected = bench_load.bench.select(config.subsets, config.limit)
    # only the selected cases' references are cropped (cached); the same function feeds ``mbench generate``
    from multiid_bench.runner.backends import generator_bench

    plan = generator_bench(selected, config, bench_load.kind, backends)
    invalid = [] if config.limit is not None else list(bench_load.invalid)
    invalid_ids = unique_record_ids(invalid, (c.id for c in plan.cases))

    from multiid_bench.runner.finalize import write_run_manifest

    check_plan = getattr(source, "check_plan", None)
    if check_plan is not None:  # images made elsewhere: stop before writing anything when none is found
        check_plan(list(plan.cases))
    out.mkdir(parents=True, exist_ok=True)
    write_run_manifest(out, config, selected, plan, invalid, invalid_ids, profile, backends, source, bench_load)
    rows_path = rows_file(out, shard)
    repair_tail(rows_path)
    # a case is done once it has a row; under retry_failed a row whose generation failed is redone (last row wins)
    redo = getattr(source, "retry_failed", False)
    previous = read_rows(out)
    done = {str(r["case_id"]) for r in previous
            if not (redo and r["status"] == "failed" and (r.get("generation") or {}).get("status") == "failed")}
    mine = select_shard(list(plan.cases), shard, key=lambda c: c.id)
    if config.judge is not None:  # a failed or missing judge answer is always asked again (good ones are cached)
        from multiid_bench.judge.stats import unjudged_answers

        mine_ids = {c.id for c in mine}
        rejudge = {cid: n for cid, n in unjudged_answers(previous).items() if cid in mine_ids}
        if rejudge:
            done -= set(rejudge)
            log.warning("resume: asking the judge again for %d answer(s) of %d case(s) that have no usable judge "
                        "score yet (outage, 429, refused or unparseable answer); cached good answers are not re-asked",
                        sum(rejudge.values()), len(rejudge))
    pending = [c for c in mine if c.id not in done]
    if on_plan:
        on_plan(len(pending), len(mine) - len(pending))

    written = failed = 0

    def emit(row: dict[str, Any]) -> None:
        nonlocal written, failed
        validate_row(row)
        append_row(rows_path, row)
        written, failed = written + 1, failed + (row["status"] == "failed")
        if on_row:
            on_row(row)

    for rec, cid in zip(invalid, invalid_ids):
        if cid not in done and select_shard([cid], shard, key=str):
            emit({**_base_row(cid, None, None, None), "status": "failed",
                  "reason": f"unreadable bench record: {rec.message}"})

    from multiid_bench.runner.finalize import append_session, finalize, plan_complete

    work = WorkCounters()
    try:
        if pending:
            cache = FeatureCache(default_cache_root(config.cache_dir))
            extractor = FeatureExtractor(backends, cache, batch_size=config.batch_size, counters=work)
            if general is None:
                from multiid_bench.runner.image_scores import load_general_scorers

                general = load_general_scorers(config)
            source.load(config.device)
            for start in range(0, len(pending), config.chunk_cases):
                for row in _process_chunk(pending[start : start + config.chunk_cases], source, extractor, backends,
                                          config, general):
                    emit(row)
    finally:  # also when interrupted: the work done so far counts in results.json
        append_session(out, shard, started, time.perf_counter() - t0, written, work, general)
    results = finalize(out) if plan_complete(out) else None
    return RunOutcome(out, shard, len(mine), len(mine) - len(pending), written, failed, results is not None, results)


def ref_origin(case: "Case", k: int) -> dict[str, str]:
    """Who reference ``k`` shows, for readers (report captions): the bench's identity name and, for a prepared
    crop (a content-hash file name), the file it was cropped from. Empty when the bench states neither."""
    out: dict[str, str] = {}
    identities = case.meta.get("identities") or ()
    raw = case.meta.get("raw_refs") or ()
    if k < len(identities) and identities[k]:
        out["identity"] = str(identities[k])
    if k < len(raw) and raw[k]:
        out["source"] = str(raw[k])
    return out


def _base_row(case_id: str, case: "Case | None", gen: "Generated | None", seed: int | None) -> dict[str, Any]:
    return {
        "row_schema": ROW_SCHEMA_VERSION, "case_id": case_id,
        "subset": case.subset if case else None, "num_persons": case.num_persons if case else None,
        "status": "ok", "reason": None, "notes": [], "seed": seed,
        # bench-row irregularities the official conversion tolerates (data.records.regularise): kept, flagged
        "irregular": [dict(i) for i in case.meta.get("irregular", ())] if case else [],
        "generation": (gen.record or None) if gen else None, "images": {}, "detections": {},
        "scores": {}, "general": {}, "elapsed_s": 0.0,
    }


def _specs(case: "Case", gen_path: str, pad: float) -> tuple[ImageSpec, ImageSpec | None, list[ImageSpec]]:
    gt = ImageSpec(str(case.gt), 1.0) if case.gt is not None else None
    return ImageSpec(gen_path, 1.0), gt, [ImageSpec(str(r), pad) for r in case.refs]


def _paper_specs(case: "Case", gen_path: str, config: RunConfig) -> tuple[ImageSpec, ImageSpec | None, list[ImageSpec]]:
    """The views the paper protocol scores: as given, or as the official pipeline stored them.

    Official storage (verified in hf2bench.py and infer_withanyone.py: ``PIL.Image.save`` with defaults, JPEG
    q75): the generated image once (``out.jpg``; a JPEG file is taken as already stored), the GT twice
    (``hf2bench`` then ``ori.jpg``), each reference crop once (``ref_k.jpg``). Files of an official folder
    are those bytes already.
    """
    g, t, rs = _specs(case, gen_path, config.ref_pad_ratio)
    if config.paper_pixels != "official" or "official_folder" in case.meta:
        return g, t, rs
    from multiid_bench.images import stored_format

    g = ImageSpec(g.path, g.pad_ratio, 0 if stored_format(g.path) == "JPEG" else 1)
    t = ImageSpec(t.path, t.pad_ratio, 2) if t is not None else None
    return g, t, [ImageSpec(r.path, r.pad_ratio, 1) for r in rs]


def _process_chunk(
    chunk: Sequence["Case"], source: "ImageSource", extractor: FeatureExtractor, backends: Sequence[FaceBackend],
    config: RunConfig, general: "GeneralScorers",
) -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    gens = [source.obtain(case) for case in chunk]
    t_gen = time.perf_counter() - t0
    specs: list[ImageSpec] = []
    for case, gen in zip(chunk, gens):
        if gen.status == "ok" and gen.path and len(case.refs) == case.num_persons:
            g, t, rs = _specs(case, gen.path, config.ref_pad_ratio)
            specs.extend([g] + ([t] if t else []) + rs)
            pg, pt, prs = _paper_specs(case, gen.path, config)
            specs.extend([s for s in [pg, pt, *prs] if s is not None and s.jpeg])
    views = extractor.run(specs)
    general.arrays.update(extractor.last_arrays)
    general_scores = general.score([(c, g.path, c.gt) for c, g in zip(chunk, gens) if g.status == "ok" and g.path])
    t_face = time.perf_counter() - t0 - t_gen
    rows = []
    for case, gen in zip(chunk, gens):
        try:
            row = _case_row(case, gen, views, backends, config)
        except Exception as e:  # the error's policy decides; a bug on one case fails that case, the row says why
            if stops_run(e):
                raise
            log.error("case %s: unexpected error while scoring:\n%s", case.id, traceback.format_exc())
            row = _base_row(case.id, case, gen, gen.seed)
            row.update(status="failed", reason=f"internal error while scoring: {type(e).__name__}: {e}")
        if row["status"] != "not_applicable" and row["scores"]:
            row["general"] = general_scores.get(case.id, {})
        judge_failures = getattr(general, "judge_failures", {})
        if case.id in judge_failures:  # the judge decides a judged case's status; its raw answers become notes
            row["notes"] = [*row["notes"], *general.judge_notes.pop(case.id, [])]
            reason = judge_failures.pop(case.id)
            if row["status"] == "ok":
                row.update(status="failed", reason=reason)
        row["elapsed_s"] = round((t_face / max(len(chunk), 1)) + float((gen.record or {}).get("elapsed_s", 0.0)), 4)
        rows.append(row)
    return rows


def score_chunk(
    chunk: Sequence["Case"], source: "ImageSource", extractor: FeatureExtractor, backends: Sequence[FaceBackend],
    config: RunConfig, general: "GeneralScorers",
) -> list[dict[str, Any]]:
    """Rows for a chunk of cases, exactly as a run writes them, without a run folder (``mb.IdentityScore``
    scores in-memory image sets through this, so its numbers are the bench's)."""
    return _process_chunk(chunk, source, extractor, backends, config, general)


def _faces_of(res: ViewResult | None, backend: FaceBackend) -> FaceSet | None:
    if res is None or res.error:
        return None
    return res.by_model.get(backend.name)


def _case_row(
    case: "Case", gen: "Generated", views: Mapping[ImageSpec, ViewResult], backends: Sequence[FaceBackend],
    config: RunConfig,
) -> dict[str, Any]:
    row = _base_row(case.id, case, gen, gen.seed)
    if gen.status != "ok" or not gen.path:
        row.update(status="not_applicable" if gen.status == "not_applicable" else "failed", reason=gen.reason)
        return row
    if len(case.refs) != case.num_persons:
        row.update(status="failed", reason=f"{len(case.refs)} reference image(s) for {case.num_persons} person(s)")
        return row
    g_spec, t_spec, r_specs = _specs(case, gen.path, config.ref_pad_ratio)
    g_res = views[g_spec]
    t_res = views[t_spec] if t_spec else None
    r_res = [views[s] for s in r_specs]
    from multiid_bench.images import stored_mode

    row["images"] = {  # mode: as stored (the paper protocol excludes what the official code cannot read)
        "generated": {"path": g_spec.path, "sha256": g_res.sha256, "mode": stored_mode(g_spec.path)},
        "gt": {"path": t_spec.path, "sha256": t_res.sha256, "mode": stored_mode(t_spec.path)} if t_spec and t_res else None,
        "refs": [{"path": s.path, "sha256": v.sha256, "pad_ratio": s.pad_ratio, **ref_origin(case, k)}
                 for k, (s, v) in enumerate(zip(r_specs, r_res))],
    }
    if g_res.error:
        reason = "generated image missing" if "does not exist" in g_res.error else "generated image unreadable"
        row.update(status="failed", reason=f"{reason}: {g_res.error}")
        return row
    errors: list[str] = []
    if t_spec is None:
        errors.append("case has no GT image: Sim(GT) and copy-paste not computed")
    elif t_res is not None and t_res.error:
        errors.append(f"GT image unreadable: {t_res.error}")
    errors += [f"reference {j + 1} unreadable: {v.error}" for j, v in enumerate(r_res) if v.error]

    face_msgs: dict[str, list[str]] = {}
    p_specs = _paper_specs(case, gen.path, config)
    paper_views = None
    if any(s is not None and s.jpeg for s in (p_specs[0], p_specs[1], *p_specs[2])):
        row["paper_pixels"] = {"generated_jpeg": p_specs[0].jpeg, "gt_jpeg": p_specs[1].jpeg if p_specs[1] else None,
                               "refs_jpeg": [s.jpeg for s in p_specs[2]]}

        def paper_views(b: FaceBackend, dim: int) -> tuple[Any, Any, list[Any]]:
            pv = [views.get(s) if s is not None else None for s in (p_specs[0], p_specs[1], *p_specs[2])]
            empty = FaceSet([], np.zeros((0, dim), dtype=np.float32))
            return (_faces_of(pv[0], b), _faces_of(pv[1], b) if pv[1] is not None else None,
                    [_faces_of(v, b) or empty for v in pv[2:]])
    notes: list[str] = []
    for b in backends:
        g = _faces_of(g_res, b)
        if g is None:
            continue
        dim = g.emb.shape[1]
        t = _faces_of(t_res, b)
        rs = [_faces_of(v, b) or FaceSet([], np.zeros((0, dim), dtype=np.float32)) for v in r_res]
        pg, pt, prs = (g, t, rs) if paper_views is None else paper_views(b, dim)
        if pg is None:  # the JPEG view of the generated image could not be made: score as given, and say so
            pg, pt, prs = g, t, rs
            jpeg_view = views.get(p_specs[0])
            notes.append(f"{b.name}: paper protocol scored the files as given; the JPEG view of the generated image "
                         f"failed ({jpeg_view.error if jpeg_view is not None else 'not made'})")
        paper = score_paper(pg, pt, prs, subset=case.subset, ref_policy=b.ref_policy, cp_eps=config.cp_eps,
                            norm_eps=config.paper_norm_eps)
        strict = score_strict(g, t, rs, case.boxes, missing_score=config.strict_missing_score,
                              iou_min=config.strict_iou_min, cp_eps=config.cp_eps)
        row["scores"].setdefault("paper", {})[b.name] = paper
        row["scores"].setdefault("strict", {})[b.name] = strict
        n, k = g.emb.shape[0], case.num_persons
        if n == 0:
            small = _too_small(b.detector, g_spec.path)  # say so: not a model failure to find a face
            face_msgs.setdefault("no face in generated image" + (f" ({small})" if small else ""), []).append(b.name)
        elif n < k:
            face_msgs.setdefault(f"{k} faces expected, {n} found", []).append(b.name)
        elif n > k:
            notes.append(f"{b.name}: {n} faces in generated image for {k} person(s)")
        for j in paper["refs_without_face"]:
            notes.append(f"{b.name}: no face found in reference {j + 1}")
        if strict["unresolved"]:
            notes.append(f"{b.name}: identities {[j + 1 for j in strict['unresolved']]} have no GT or reference face")
        det = row["detections"].setdefault(b.detector.id, {})
        if not det:
            det["generated"] = g.faces
            det["gt"] = t.faces if t is not None else None
            det["refs"] = [v.by_detector.get(b.det_key) if not v.error else None for v in r_res]
    multi = len(backends) > 1
    missing: list[str] = []  # a model outcome (the image lacks faces), not a fault of the toolkit or generator
    for msg, models in face_msgs.items():
        text = f"{msg} ({', '.join(models)})" if multi and len(models) < len(backends) else msg
        # a detector that cannot look at the image at all is a measurement failure, not a model outcome
        (errors if "too small" in msg else missing).append(text)
    if (errors or missing) and case.meta.get("task_type"):  # a judged bench (OmniContext): no GT, maybe no face
        notes, errors, missing = notes + errors + missing, [], []
    row["notes"] = notes
    if errors:
        row.update(status="failed", reason="; ".join(errors + missing))
    elif missing:
        row.update(status=MISSING_FACES, reason="; ".join(missing))
    return row


def _too_small(detector: Any, path: str) -> str | None:
    """The detector's "too small" reason if it cannot look at the image at ``path`` at all, else None."""
    from PIL import Image

    from multiid_bench.faces.detect import TOO_SMALL_REASON, too_small

    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # unreadable images were reported before detection
        return None
    return TOO_SMALL_REASON if too_small(detector, (h, w)) else None


def default_out_dir(config: RunConfig) -> Path:
    """``runs/<model>-<bench>-<profile>`` (bench paths reduced to their last component)."""
    bench = Path(config.bench).name or "bench"
    return Path("runs") / f"{config.model}-{bench}-{config.profile}"
