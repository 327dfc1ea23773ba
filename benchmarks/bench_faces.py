"""Face-pipeline speed on this machine: embedding throughput per model at batch 1 and 32, achieved GFLOP/s
against a matmul peak measured in the same run, and detection time per detector on a 1 MP photo.

Real architectures everywhere; weights are the real ones when the cache has them, otherwise random
(timing does not depend on weight values). The ArcFace rows run the ONNX file twice: through onnxruntime
(the official runtime) and converted to torch (``arcface+torch``, the default backend); without the real
files we export a random arcface_torch IResNet-50 / IResNet-100 (insightface's w600k_r50 / glintr100 layout)
to ONNX. dlib always uses its real (shipped) weights.

    python benchmarks/bench_faces.py                 # CPU, all models and detectors
    python benchmarks/bench_faces.py --device cuda --faces 64 --json bench.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak_gflops(device: str, n: int = 2048, reps: int = 5) -> float:
    """Best fp32 GEMM rate (2 n^3 FLOP per product) with the current thread setting."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    _sync(device)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def torch_flops(module, size: int, device: str) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        module(torch.zeros(1, 3, size, size, device=device))
    return float(fc.get_total_flops())


def _real_or_none(weight_id: str, filename: str | None) -> Path | None:
    from multiid_bench.errors import MissingWeightsError
    from multiid_bench.weights import get_store

    try:
        return get_store(offline=True).resolve(weight_id, filename)
    except MissingWeightsError:
        return None


def build_models(device: str, tmp: Path, only: list[str] | None) -> list[tuple[str, Any, float | None, str]]:
    """(model id, FaceModel, FLOPs per face or None, weights kind) for every benchmarked model."""
    import torch

    from multiid_bench.faces.iresnet import IRESNET50, IRESNET100, build_iresnet, ir_backbone
    from multiid_bench.faces.onnx_iresnet import NotAnIResNetGraph
    from multiid_bench.faces.models import FACE_MODELS, ArcFaceONNX, ArcFaceTorch, _bgr_01, _bgr_pm1, _rgb_facenet, _TorchModel, \
        load_face_model

    out = []

    for mid, arch in (("arcface", "ir_50"), ("arcface-glintr100", "ir_101")):
        if only and mid not in only:
            continue
        spec = FACE_MODELS[mid]
        net = build_iresnet(IRESNET50 if arch == "ir_50" else IRESNET100)
        flops = torch_flops(net, 112, "cpu")
        real = _real_or_none(spec.weight_id, spec.filename)
        path = real or tmp / f"{arch}.onnx"
        if real is None:  # the arcface_torch IResNet layout, as insightface exported w600k_r50 / glintr100
            torch.onnx.export(net, torch.randn(1, 3, 112, 112), str(path), input_names=["input.1"],
                              output_names=["embedding"], dynamic_axes={"input.1": {0: "n"}, "embedding": {0: "n"}},
                              dynamo=False, opset_version=17)
        out.append((mid, ArcFaceONNX(mid, spec, path, "bench", device=device, batch_size=32), flops,
                    "real" if real else f"random ({arch} proxy, onnxruntime)"))
        try:  # the same file, converted to torch (the default backend)
            torch_model = ArcFaceTorch(mid, spec, path, "bench", device=device, batch_size=32)
        except NotAnIResNetGraph as e:
            print(f"# {mid}: no torch row ({e})")
        else:
            out.append((f"{mid}+torch", torch_model, flops, ("real" if real else "random") + ", torch (converted)"))
    for mid, arch in (("adaface", "ir_50"), ("adaface-ir101", "ir_101")):
        if only and mid not in only:
            continue
        net = ir_backbone(arch).eval()
        out.append((mid, _TorchModel(mid, FACE_MODELS[mid], "bench", net, _bgr_pm1, device=device, batch_size=32),
                    torch_flops(net.to(device), 112, device), "random"))
    from facenet_pytorch import InceptionResnetV1

    for mid, prep, size in (("facenet", _bgr_01, 112), ("facenet-standard", _rgb_facenet, 160)):
        if only and mid not in only:
            continue
        net = InceptionResnetV1().eval()
        out.append((mid, _TorchModel(mid, FACE_MODELS[mid], "bench", net, prep, device=device, batch_size=32),
                    torch_flops(net.to(device), size, device), "random"))
    if not only or "dlib" in only:
        out.append(("dlib", load_face_model("dlib", offline=True, batch_size=32), None, "real (shipped)"))
    return out


def time_embed(model, crops: np.ndarray, batch: int, device: str, repeats: int) -> float:
    """Seconds to embed all ``crops`` with ``batch`` crops per forward (best of ``repeats`` after warm-up)."""
    model.batch_size = batch
    model.embed(crops[:batch])
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        model.embed(crops)
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return best


def one_megapixel_photo() -> np.ndarray:
    import cv2
    import insightface

    from multiid_bench.images import load_rgb_array

    img = load_rgb_array(Path(insightface.__file__).parent / "data" / "images" / "t1.jpg")
    scale = (1_000_000 / (img.shape[0] * img.shape[1])) ** 0.5
    return cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)


def build_detectors(device: str, tmp: Path) -> list[tuple[str, Any, str]]:
    import torch

    from multiid_bench.faces.detect import DETECTORS, RetinaFaceDetector, load_detector

    dets: list[tuple[str, Any, str]] = [("mtcnn", load_detector("mtcnn", device=device, offline=True), "real (shipped)")]
    for did in ("scrfd", "scrfd-antelopev2"):
        spec = DETECTORS[did]
        if _real_or_none(spec.weight_id, spec.filename) is not None:
            dets.append((did, load_detector(did, device=device, offline=True), "real"))
        else:
            dets.append((did, None, f"skipped: needs weights (mbench weights download {spec.weight_id})"))
    real = _real_or_none("retinaface-r50-facexlib", None)
    if real is None:
        from facexlib.detection.retinaface import RetinaFace

        real_kind, real = "random (real R50 arch, quiet heads)", tmp / "retinaface.pth"
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            net = RetinaFace(network_name="resnet50", half=False, device=torch.device("cpu"))
        for prm in net.ClassHead.parameters():  # softmax 0.5 everywhere: no box passes 0.97, so the time is
            prm.data.zero_()                   # the network + decoding, as on a photo with a few faces
        torch.save(net.state_dict(), real)
    else:
        real_kind = "real"
    dets.append(("retinaface", RetinaFaceDetector(str(real), device=device, config=dict(DETECTORS["retinaface"].defaults)),
                 real_kind))
    return dets


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads (CPU)")
    p.add_argument("--faces", type=int, default=32, help="faces per measurement (batch 32 = one forward)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--models", nargs="*", default=None, help="subset of model ids")
    p.add_argument("--no-detect", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = {"device": args.device, "threads": args.threads, "torch": torch.__version__, "cpu": platform.processor()
           or platform.machine(), "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None}
    if args.device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(0)
    peak = matmul_peak_gflops(args.device)
    print(f"# {env}\n# fp32 matmul peak (2048^3, best of 5): {peak:.1f} GFLOP/s (measured again at the end)\n")
    crops = np.random.default_rng(0).integers(0, 256, (args.faces, 160, 160, 3), dtype=np.uint8)
    rows, det_rows = [], []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        print(f"{'model':<18} {'weights':<34} {'b=1 faces/s':>11} {'b=32 faces/s':>12} {'speed-up':>8} "
              f"{'GFLOP/face':>10} {'GFLOP/s b32':>11} {'% peak':>6}")
        for mid, model, flops, kind in build_models(args.device, tmp, args.models):
            size = model.card.crop_size
            c = np.stack([np.asarray(__import__("cv2").resize(x, (size, size))) for x in crops])
            t1 = time_embed(model, c, 1, args.device, args.repeats)
            t32 = time_embed(model, c, 32, args.device, args.repeats)
            r = {"model": mid, "weights": kind, "faces_per_s_b1": args.faces / t1, "faces_per_s_b32": args.faces / t32,
                 "speedup": t1 / t32, "gflop_per_face": flops / 1e9 if flops else None}
            r["gflops_b32"] = r["gflop_per_face"] * r["faces_per_s_b32"] if flops else None
            r["pct_peak_b32"] = 100 * r["gflops_b32"] / peak if flops else None
            rows.append(r)
            fmt = lambda v, f: format(v, f) if v is not None else "n/a"  # noqa: E731
            print(f"{mid:<18} {kind[:34]:<34} {r['faces_per_s_b1']:>11.1f} {r['faces_per_s_b32']:>12.1f} "
                  f"{r['speedup']:>7.2f}x {fmt(r['gflop_per_face'], '10.2f'):>10} {fmt(r['gflops_b32'], '11.1f'):>11} "
                  f"{fmt(r['pct_peak_b32'], '5.1f'):>6}")
            sys.stdout.flush()
        if not args.no_detect:
            img = one_megapixel_photo()
            print(f"\n# detection on a {img.shape[1]}x{img.shape[0]} photo ({img.shape[0] * img.shape[1] / 1e6:.2f} MP)")
            for did, det, kind in build_detectors(args.device, tmp):
                if det is None:
                    det_rows.append({"detector": did, "weights": kind, "seconds": None})
                    print(f"{did:<18} {kind}")
                    continue
                det.detect([img])
                times = []
                for _ in range(3):
                    t = time.perf_counter()
                    n = len(det.detect([img])[0])
                    _sync(args.device)
                    times.append(time.perf_counter() - t)
                det_rows.append({"detector": did, "weights": kind, "seconds": statistics.median(times), "faces": n})
                print(f"{did:<18} {kind:<34} {statistics.median(times):8.3f} s/image  ({n} faces)")
    peak_end = matmul_peak_gflops(args.device)
    print(f"\n# fp32 matmul peak at the end: {peak_end:.1f} GFLOP/s (a shared machine drifts; % peak used the first)")
    result = {"env": env, "matmul_peak_gflops": peak, "matmul_peak_gflops_end": peak_end, "embedding": rows,
              "detection": det_rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
