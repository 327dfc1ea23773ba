"""The full bench end to end: a synthetic MultiID-Bench with the real case mix, every metric of the paper profile.

What runs (``run_evaluation``, the same code as ``mbench evaluate``): decode, detection with SCRFD-10GF and
RetinaFace-R50, alignment (ArcFace and FFHQ-112 templates), ArcFace (IResNet-50 on torch, converted from ONNX),
AdaFace IR-50 and FaceNet, CLIP-I/T (ViT-B/16) and aesthetic (SigLIP so400m + head), both protocols' metrics,
rows and ``results.json``. Architectures are real, weights random (timing does not depend on weight values;
how detection still yields faces is explained in ``full_bench_models.py``).

Bench: ``--cases`` cases in the real mix. MultiID-Bench has 433 cases (dataset card); p3 = 30 follows from the
user study (Appendix H: 230 groups = 100 p1 + 100 p2 + all p3); the p1/p2 split of the other 403 is not
published, so it is split evenly (``--mix`` changes it). Images are 512-1024 px per side with real face crops
(the six faces MTCNN finds in insightface's shipped ``t1.jpg``), GT as JPEG, generated images as PNG, one
reference crop per person.

* cold: model A on an empty cache; warm: model B on the same bench (GT and reference faces and features
  cached), as when a second model is evaluated.
* per stage: busy seconds (decode, detect, align run on the worker thread and overlap the embedding).

    python benchmarks/bench_full_bench.py --cases 6 --device cpu
    python benchmarks/bench_full_bench.py --cases 433 --device cuda --json h200.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from full_bench_models import fingerprint  # noqa: E402

FULL_BENCH = 433
P3_CASES = 30  # Appendix H: 230 user-study groups = 100 p1 + 100 p2 + all p3


def case_mix(n: int, mix: tuple[float, float, float] | None = None) -> list[tuple[str, int]]:
    """``n`` (subset, persons) pairs in MultiID-Bench's proportions, interleaved so any prefix is mixed."""
    if mix is None:
        p3 = P3_CASES / FULL_BENCH
        mix = ((1 - p3) / 2, (1 - p3) / 2, p3)
    counts = np.floor(np.asarray(mix) / sum(mix) * n).astype(int)
    for i in np.argsort(-(np.asarray(mix) / sum(mix) * n - counts))[: n - counts.sum()]:
        counts[i] += 1
    while n >= 3 and counts.min() == 0:  # a short smoke run still exercises every subset
        counts[np.argmin(counts)] += 1
        counts[np.argmax(counts)] -= 1
    out: list[tuple[str, int]] = []
    left = counts.copy()
    while left.sum():
        for i, sub in enumerate(("p1", "p2", "p3")):
            if left[i]:
                left[i] -= 1
                out.append((sub, 1 if i == 0 else 2 if i == 1 else 3 + (len(out) % 2)))
    return out


def real_faces() -> list[tuple[np.ndarray, np.ndarray]]:
    """(square crop with margin, its 5 landmarks in crop pixels) for each face MTCNN finds in t1.jpg."""
    import importlib.util

    from multiid_bench.faces import load_detector
    from multiid_bench.images import load_rgb_array

    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("this benchmark needs the photo shipped with insightface (pip install insightface)")
    photo = load_rgb_array(Path(next(iter(spec.submodule_search_locations))) / "data" / "images" / "t1.jpg")
    out = []
    for f in load_detector("mtcnn").detect([photo])[0][:6]:
        x1, y1, x2, y2 = f.box
        side = int(1.6 * max(x2 - x1, y2 - y1))
        left, top = int(max(0, (x1 + x2) / 2 - side / 2)), int(max(0, (y1 + y2) / 2 - side / 2))
        crop = photo[top : top + side, left : left + side].copy()
        out.append((crop, np.asarray(f.landmarks, dtype=np.float64) - (left, top)))
    return out


def _face(lm: np.ndarray, scale: float, dx: float, dy: float, side: float) -> Any:
    from multiid_bench.faces import Face

    pts = lm * scale + (dx, dy)
    cx, cy = pts[:, 0].mean(), pts[:, 1].mean()
    half = 0.42 * side
    return Face(box=(cx - half, cy - half * 1.1, cx + half, cy + half * 1.2), score=0.99,
                landmarks=tuple((float(x), float(y)) for x, y in pts))


def make_bench(root: Path, n: int, mix: tuple[float, float, float] | None, seed: int = 0) -> tuple[Any, dict[str, list[Any]], dict[str, int]]:
    """Bench + generated folders A/B; ``known`` maps each decoded view's fingerprint to its faces."""
    from PIL import Image

    from multiid_bench.data.case import Bench, Case
    from multiid_bench.data.refcrop import pad_reference
    from multiid_bench.images import decode_image

    rng = np.random.default_rng(seed)
    faces = real_faces()
    known: dict[str, list[Any]] = {}

    def register(path: Path, fs: list[Any], pad: bool = False) -> None:
        arr = np.asarray(decode_image(path).array)
        known[fingerprint(arr)] = fs
        if pad:
            h, w = arr.shape[:2]
            s = int(1.5 * max(w, h))
            dx, dy = (s - w) // 2, (s - h) // 2
            known[fingerprint(pad_reference(arr, 1.5))] = [_shift(f, dx, dy) for f in fs]

    for d in ("gen_a", "gen_b", "refs", "gt"):
        (root / d).mkdir(parents=True, exist_ok=True)
    cases, counts = [], {"p1": 0, "p2": 0, "p3": 0}
    for i, (subset, k) in enumerate(case_mix(n, mix)):
        counts[subset] += 1
        w, h = (int(v) for v in rng.integers(512, 1025, 2))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * (60 + 40 * c) / w + yy * (30 + 20 * c) / h) % 256 for c in range(3)], -1)
        canvas = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        side = int(min(w / (k + 0.5), h * 0.7))
        who = rng.choice(len(faces), size=k, replace=False)
        boxes, placed, refs = [], [], []
        for j, p in enumerate(who):
            crop, lm = faces[p]
            tile = np.asarray(Image.fromarray(crop).resize((side, side), Image.Resampling.BILINEAR))
            x = int((j + 0.25) * w / (k + 0.5))
            y = int((h - side) * rng.uniform(0.2, 0.8))
            canvas[y : y + side, x : x + side] = tile
            f = _face(lm, side / crop.shape[0], x, y, side)
            placed.append(f)
            boxes.append(tuple(int(v) for v in f.box))
            rside = int(rng.integers(224, 400))
            ref = np.asarray(Image.fromarray(crop[:, ::-1]).resize((rside, rside), Image.Resampling.BILINEAR))
            ref = np.clip(ref.astype(np.int16) + int(rng.integers(-10, 10)), 0, 255).astype(np.uint8)
            rpath = root / "refs" / f"c{i:03d}_{j}.jpg"
            Image.fromarray(ref).save(rpath, quality=92)
            lm_ref = lm.copy()
            lm_ref[:, 0] = crop.shape[1] - 1 - lm_ref[:, 0]
            lm_ref = lm_ref[[1, 0, 2, 4, 3]]  # mirrored: left/right eye and mouth corners swap
            register(rpath, [_face(lm_ref, rside / crop.shape[0], 0, 0, rside)], pad=True)
            refs.append(rpath)
        gt = root / "gt" / f"c{i:03d}.jpg"
        Image.fromarray(canvas).save(gt, quality=92)
        register(gt, placed)
        for g, d in enumerate(("gen_a", "gen_b")):
            noisy = canvas.astype(np.int16) + rng.normal(0, 3 + 2 * g, canvas.shape).round().astype(np.int16) + 4 * g
            gp = root / d / f"c{i:03d}.png"
            Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(gp, compress_level=1)
            register(gp, placed)
        cases.append(Case(id=f"c{i:03d}", subset=subset, prompt=f"{k} people in a photo, case {i}", gt=gt,
                          refs=tuple(refs), boxes=tuple(boxes), num_persons=k))
    return Bench(id="synthetic-full", root=root, cases=tuple(cases)), known, counts


def _shift(face: Any, dx: int, dy: int) -> Any:
    from multiid_bench.faces import Face

    x1, y1, x2, y2 = face.box
    return Face(box=(x1 + dx, y1 + dy, x2 + dx, y2 + dy), score=face.score,
                landmarks=tuple((x + dx, y + dy) for x, y in face.landmarks))


class Stages:
    """Busy seconds per stage, from wrappers around the runner's own functions (this benchmark only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.extractors: list[Any] = []

    def wrap(self, owner: Any, name: str, stage: str) -> None:
        fn = getattr(owner, name, None)
        if fn is None:
            return

        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0

        setattr(owner, name, timed)

    @contextmanager
    def run(self) -> Iterator[dict[str, float]]:
        self.seconds, self.extractors = {}, []
        out: dict[str, float] = {}
        yield out
        for ex in self.extractors:
            for k, v in ex.stage_seconds.items():
                out[k] = out.get(k, 0.0) + v
        out.update(self.seconds)


def instrument(stages: Stages, scorers: dict[str, Any]) -> None:
    import multiid_bench.runner.evaluation as ev
    import multiid_bench.runner.extract as ex_mod

    base = ex_mod.FeatureExtractor

    class Recorded(base):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            stages.extractors.append(self)

    ev.FeatureExtractor = Recorded  # type: ignore[misc]
    stages.wrap(ev, "_case_row", "metrics")
    import multiid_bench.runner.finalize as fin

    stages.wrap(ev, "append_row", "write")
    for name in ("finalize", "append_session", "write_run_manifest"):  # imported inside run_evaluation
        stages.wrap(fin, name, "write")
    for attr in ("encode_images", "encode_texts", "score_features"):
        stages.wrap(scorers["clip"], attr, "clip")
        stages.wrap(scorers["aesthetic"], attr, "aesthetic")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=20)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 (auto: cuda when available)")
    ap.add_argument("--batch-size", type=int, default=64, help="faces (and images) per forward pass")
    ap.add_argument("--chunk-cases", type=int, default=32, help="cases decoded/detected/embedded together")
    ap.add_argument("--clip-dtype", default="float32", choices=("float32", "float16", "bfloat16"))
    ap.add_argument("--aesthetic-dtype", default="bfloat16", choices=("float32", "float16", "bfloat16"))
    ap.add_argument("--mix", default=None, help="p1,p2,p3 proportions (default: MultiID-Bench's, see the docstring)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    for var in ("MBENCH_OFFLINE", "HF_HUB_OFFLINE"):  # random weights: nothing may be fetched
        os.environ.setdefault(var, "1")

    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {device}: CUDA is not available here (torch {torch.__version__})")
    torch.set_num_threads(args.threads)
    mix = tuple(float(v) for v in args.mix.split(",")) if args.mix else None

    from multiid_bench.data.loaders import BenchLoad
    from multiid_bench.runner import RunConfig, run_evaluation
    from multiid_bench.runner.cache import FeatureCache
    from multiid_bench.runner.image_scores import GeneralScorers
    from multiid_bench.runner.sources import FolderSource

    from full_bench_models import face_backends, image_scorers

    env = {"device": device, "threads": args.threads, "torch": torch.__version__, "python": platform.python_version(),
           "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "load_avg_start": [round(v, 2) for v in os.getloadavg()]}
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
        torch.cuda.reset_peak_memory_stats()
    print(f"# {json.dumps(env)}")
    with tempfile.TemporaryDirectory(prefix="mbench-full-bench-") as td:
        tmp = Path(td)
        t0 = time.perf_counter()
        bench, known, counts = make_bench(tmp / "bench", args.cases, mix)
        t_make = time.perf_counter() - t0
        t0 = time.perf_counter()
        backends, info = face_backends(tmp, device, known, args.batch_size)
        scorers = image_scorers(device, args.clip_dtype, args.aesthetic_dtype, args.batch_size)
        for s in scorers.values():
            s.resolve_weights()
            s.load(device)
        t_load = time.perf_counter() - t0
        print(f"# bench: {args.cases} cases {counts}, {sum(c.num_persons for c in bench.cases)} persons; "
              f"made in {t_make:.1f} s; models loaded in {t_load:.1f} s; SCRFD stand-in {info['scrfd_gflops_640'] / 2:.1f} GMAC at 640 "
              "(SCRFD-10GF: 10 GMAC, mmcv's convention)")
        print(f"# runs on: {info['runs_on']}; clip {args.clip_dtype}, aesthetic {args.aesthetic_dtype}")
        stages = Stages()
        instrument(stages, scorers)
        cache = tmp / "cache"
        runs: dict[str, dict[str, Any]] = {}
        for label, gen in (("cold", "gen_a"), ("warm", "gen_b")):
            status = {n: {"status": "ok", "reason": None, "card": s.card.to_dict()} for n, s in scorers.items()}
            general = GeneralScorers(scorers, status, FeatureCache(cache), device)
            config = RunConfig(model=f"synthetic-{gen}", bench="synthetic-full", profile="paper", ref_source="raw",
                               cache_dir=str(cache), batch_size=args.batch_size, chunk_cases=args.chunk_cases,
                               device=device, offline=True)
            with stages.run() as per_stage:
                t0 = time.perf_counter()
                outcome = run_evaluation(config, tmp / f"run_{label}", FolderSource(tmp / "bench" / gen),
                                         backends=backends, profile={"name": "paper (random weights)"},
                                         bench_load=BenchLoad(bench=bench), general=general)
                wall = time.perf_counter() - t0
            rows = outcome.results["counts"] if outcome.results else {}
            runs[label] = {"wall_s": wall, "cases_per_s": args.cases / wall, "stages": per_stage, "counts": rows}
        result = {"env": env, "cases": args.cases, "mix": counts, "load_s": t_load, "runs": runs,
                  "peak_rss_mb": _peak_rss_mb(), "info": info}
        if device.startswith("cuda"):
            result["peak_gpu_mb_torch"] = torch.cuda.max_memory_allocated() / 2**20
    _print(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return result


_ORDER = ("hash", "decode", "detect", "detect:scrfd", "detect:retinaface", "align", "arcface", "adaface", "facenet",
          "clip", "aesthetic", "metrics", "write")


def _print(result: dict[str, Any]) -> None:
    def row(stages: dict[str, float], key: str) -> float | None:
        if key in ("detect", "align"):
            vals = [v for k, v in stages.items() if k.startswith(key + ":")]
            return sum(vals) if vals else None
        if key in ("arcface", "adaface", "facenet"):
            return stages.get(f"embed:{key}")
        return stages.get(key)

    cold, warm = result["runs"]["cold"], result["runs"]["warm"]
    print(f"\n{'stage (busy seconds)':<24} {'cold':>9} {'warm':>9}")
    for key in _ORDER:
        c, w = row(cold["stages"], key), row(warm["stages"], key)
        fmt: Callable[[float | None], str] = lambda v: f"{v:9.2f}" if v is not None else f"{'-':>9}"  # noqa: E731
        print(f"{key:<24} {fmt(c)} {fmt(w)}")
    print(f"{'wall (stages overlap)':<24} {cold['wall_s']:9.2f} {warm['wall_s']:9.2f}")
    print(f"{'cases/s':<24} {cold['cases_per_s']:9.3f} {warm['cases_per_s']:9.3f}")
    print(f"\ncounts cold {cold['counts']}\nmodels loaded in {result['load_s']:.1f} s; peak RSS {result['peak_rss_mb']:.0f} MB"
          + (f"; peak GPU memory (torch) {result['peak_gpu_mb_torch']:.0f} MB" if "peak_gpu_mb_torch" in result else
             "; peak GPU memory: n/a (cpu)"))


if __name__ == "__main__":
    main()
