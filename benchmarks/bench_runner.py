"""Runner speed: our pipeline (decode once, detect once, embed once, batched, cached) against a naive
per-sample path that embeds the way the official script does (eval-protocol section 7 item 1).

Synthetic multi-person cases are built from the six real faces of insightface's ``t1.jpg``: each case is
a GT canvas with ``--persons`` faces, one reference crop per person and a "generated" image (the GT with
noise and a brightness change). Detection is the real MTCNN (weights ship with facenet-pytorch); the face
model is FaceNet's real architecture (InceptionResnetV1, 112 px paper input) with random weights, or
AdaFace's IR-50 with ``--model ir50`` (timing does not depend on weight values).

* naive: per case, Sim(GT) embeds (generated, GT), copy-paste embeds (generated, GT, refs), Sim(Ref) embeds
  (generated, refs) -- each embedding re-reads the file, re-detects, aligns and runs the model one face
  per forward pass with autograd on, as the official FaceNet/AdaFace code does;
* ours, cold: ``run_evaluation`` on an empty cache (rows, results.json and all);
* ours, warm: a second model's images on the same bench (GT and references come from the cache);
* ours, re-score: the same images again (everything cached).

    python benchmarks/bench_runner.py                  # 50 cases, 2 persons, CPU
    python benchmarks/bench_runner.py --cases 10 --json out.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def real_faces(n: int = 6) -> list[np.ndarray]:
    """Square crops (with margin) of the faces MTCNN finds in insightface's t1.jpg."""
    import importlib.util

    from multiid_bench.faces import load_detector
    from multiid_bench.images import load_rgb_array

    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("this benchmark needs the photo shipped with insightface (pip install insightface)")
    photo = load_rgb_array(Path(next(iter(spec.submodule_search_locations))) / "data" / "images" / "t1.jpg")
    faces = load_detector("mtcnn").detect([photo])[0][:n]
    crops = []
    for f in faces:
        x1, y1, x2, y2 = f.box
        side = 1.6 * max(x2 - x1, y2 - y1)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        l, t = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        crops.append(photo[t : t + int(side), l : l + int(side)].copy())
    return crops


def make_cases(root: Path, n_cases: int, persons: int, seed: int = 0) -> tuple[Any, Path, Path]:
    """A bench of ``n_cases`` synthetic cases plus two folders of "generated" images (two models)."""
    from PIL import Image

    from multiid_bench.data.case import Bench, Case

    rng = np.random.default_rng(seed)
    faces = real_faces()
    size = 112
    tiles = [np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.LANCZOS)) for f in faces]
    gen_dirs = [root / "model_a", root / "model_b"]
    for d in gen_dirs:
        d.mkdir(parents=True, exist_ok=True)
    cases = []
    for i in range(n_cases):
        who = rng.choice(len(tiles), size=persons, replace=False)
        canvas = np.full((size + 48, persons * (size + 24) + 24, 3), 90, np.uint8)
        boxes, refs = [], []
        for j, p in enumerate(who):
            x, y = 24 + j * (size + 24), 24
            canvas[y : y + size, x : x + size] = tiles[p]
            boxes.append((x, y, x + size, y + size))
            ref = np.clip(tiles[p][:, ::-1].astype(np.int16) + rng.integers(-8, 8), 0, 255).astype(np.uint8)
            refs.append(root / f"c{i:03d}_ref{j}.png")
            Image.fromarray(ref).save(refs[-1])
        gt = root / f"c{i:03d}_gt.png"
        Image.fromarray(canvas).save(gt)
        for k, d in enumerate(gen_dirs):
            noisy = canvas.astype(np.int16) + rng.normal(0, 4 + 2 * k, canvas.shape).round().astype(np.int16) + 6 * k
            Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(d / f"case{i:03d}.png")
        cases.append(Case(id=f"case{i:03d}", subset="p2" if persons == 2 else "p3", prompt="two people",
                          gt=gt, refs=tuple(refs), boxes=tuple(boxes), num_persons=persons))
    return Bench(id="synthetic", root=root, cases=tuple(cases)), gen_dirs[0], gen_dirs[1]


class RandomFaceModel:
    """A real face-recognition architecture with random weights, behind the FaceModel protocol."""

    def __init__(self, arch: str) -> None:
        import torch

        from multiid_bench.faces.types import FaceModelCard

        torch.manual_seed(0)
        if arch == "ir50":
            from multiid_bench.faces.iresnet import ir_backbone

            self.net = ir_backbone("ir_50").eval()
        else:
            from facenet_pytorch import InceptionResnetV1

            self.net = InceptionResnetV1(pretrained=None).eval()
        self.arch = arch
        self.id = f"{arch}-random"
        self.card = FaceModelCard(id=self.id, version="bench", weights_sha256="random-seed-0", template="ffhq112",
                                  crop_size=112, input_convention="BGR x/255", embedding_dim=512,
                                  cosine_scale_note="random weights: timing only")

    def _tensor(self, crops: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.ascontiguousarray(crops[..., ::-1])).permute(0, 3, 1, 2).float() / 255.0

    def _out(self, y: Any) -> Any:
        return y[0] if isinstance(y, tuple) else y

    def embed(self, crops: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self._out(self.net(self._tensor(crops))).float().numpy()

    def embed_naive(self, crop: np.ndarray) -> np.ndarray:
        """One face, autograd on: how the official FaceNet/AdaFace code calls its models."""
        return self._out(self.net(self._tensor(crop[None]))).detach().numpy()[0]


def naive_score(bench: Any, gen_dir: Path, detector: Any, model: RandomFaceModel) -> float:
    """Per case: Sim(GT), copy-paste and Sim(Ref), each re-embedding every image it needs."""
    from multiid_bench.data.refcrop import pad_reference
    from multiid_bench.faces import align_faces
    from multiid_bench.images import load_rgb_array
    from multiid_bench.metrics import identity_scores

    def embed(path: Path, pad: bool = False) -> np.ndarray:
        arr = load_rgb_array(path)
        arr = pad_reference(arr) if pad else arr
        faces = detector.detect([arr])[0]
        if not faces:
            return np.zeros((0, 512), np.float32)
        crops = align_faces(arr, faces, "ffhq112", 112)
        return np.stack([model.embed_naive(c) for c in crops])

    def refs(case: Any) -> np.ndarray:
        return np.stack([e[0] for e in (embed(r, pad=True) for r in case.refs) if e.shape[0]])

    t0 = time.perf_counter()
    for case in bench.cases:
        gen = gen_dir / f"{case.id}.png"
        identity_scores(embed(gen), embed(case.gt), np.zeros((0, 512)))  # Sim(GT)
        identity_scores(embed(gen), embed(case.gt), refs(case), norm_eps=1e-6)  # copy-paste
        identity_scores(embed(gen), np.zeros((0, 512)), refs(case))  # Sim(Ref)
    return time.perf_counter() - t0


def ours(bench: Any, gen_dir: Path, out: Path, cache: Path, detector: Any, model: RandomFaceModel,
         batch_size: int) -> tuple[float, dict[str, Any]]:
    from multiid_bench.data.loaders import BenchLoad
    from multiid_bench.runner import RunConfig, run_evaluation
    from multiid_bench.runner.extract import FaceBackend
    from multiid_bench.runner.sources import FolderSource

    config = RunConfig(model=gen_dir.name, bench="synthetic", profile="bench", ref_source="raw", scorers=False,
                       cache_dir=str(cache), batch_size=batch_size, chunk_cases=16)
    backend = FaceBackend(name=model.arch, detector=detector, model=model, template="ffhq112", ref_policy="top_face")
    t0 = time.perf_counter()
    outcome = run_evaluation(config, out, FolderSource(gen_dir), backends=[backend], profile={"name": "bench"},
                             bench_load=BenchLoad(bench=bench))
    return time.perf_counter() - t0, outcome.results["work"]  # type: ignore[index]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=50)
    ap.add_argument("--persons", type=int, default=2, choices=(2, 3, 4))
    ap.add_argument("--model", choices=("facenet", "ir50"), default="facenet")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)

    import torch

    from multiid_bench.faces import load_detector

    with tempfile.TemporaryDirectory(prefix="mbench-bench-runner-") as tmp:
        root = Path(tmp)
        bench, gen_a, gen_b = make_cases(root / "bench", args.cases, args.persons)
        detector = load_detector("mtcnn")
        model = RandomFaceModel(args.model)
        # Warm-up outside the timings (lazy init, thread pools, allocator), for both paths alike.
        model.embed(np.zeros((2, 112, 112, 3), np.uint8))
        model.embed_naive(np.zeros((112, 112, 3), np.uint8))
        from multiid_bench.images import load_rgb_array

        detector.detect([load_rgb_array(bench.cases[0].gt)])
        cache = root / "cache"
        t_cold, w_cold = ours(bench, gen_a, root / "run_a", cache, detector, model, args.batch_size)
        t_warm, w_warm = ours(bench, gen_b, root / "run_b", cache, detector, model, args.batch_size)
        t_again, _ = ours(bench, gen_b, root / "run_b2", cache, detector, model, args.batch_size)
        t_naive = naive_score(bench, gen_a, detector, model)
    res = {
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cpu": platform.processor() or platform.machine()},
        "cases": args.cases, "persons": args.persons, "model": f"{args.model} (random weights)", "detector": "mtcnn",
        "seconds": {"naive": round(t_naive, 2), "ours_cold": round(t_cold, 2), "ours_warm": round(t_warm, 2),
                    "ours_rescore": round(t_again, 2)},
        "speedup": {"cold": round(t_naive / t_cold, 2), "warm": round(t_naive / t_warm, 2),
                    "rescore": round(t_naive / t_again, 2)},
        "work_cold": w_cold, "work_warm": w_warm,
    }
    print(f"{args.cases} synthetic {args.persons}-person cases, MTCNN + {res['model']}, "
          f"{res['machine']['threads']} torch threads")
    print(f"  naive per-sample (official embedding pattern): {t_naive:8.2f} s")
    print(f"  ours, cold cache:                              {t_cold:8.2f} s   speed-up {res['speedup']['cold']:.2f}x (target >= 2x)")
    print(f"  ours, warm (2nd model; GT + refs cached):      {t_warm:8.2f} s   speed-up {res['speedup']['warm']:.2f}x (target >= 5x)")
    print(f"  ours, re-score (everything cached):            {t_again:8.2f} s   speed-up {res['speedup']['rescore']:.2f}x")
    print(f"  work cold: {w_cold['forward_passes']} faces embedded, {w_cold['detector_images']} images detected")
    print(f"  work warm: {w_warm['forward_passes']} faces embedded, {w_warm['detector_images']} images detected")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
