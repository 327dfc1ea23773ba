"""Temporary: GPU timing of the face embedders (torch-only fallback when the full bench cannot import)."""
import importlib.util, json, os, sys, time
import torch

dev = "cuda"
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
print("gpu", torch.cuda.get_device_name(0), "torch", torch.__version__, flush=True)
n = 8192
a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
a @ b; torch.cuda.synchronize()
best = 1e9
for _ in range(5):
    t = time.perf_counter(); a @ b; torch.cuda.synchronize(); best = min(best, time.perf_counter() - t)
peak = 2 * n**3 / best / 1e9
print(f"fp32 matmul peak {peak:.0f} GFLOP/s", flush=True)
spec = importlib.util.spec_from_file_location("iresnet", "multiid_bench/faces/iresnet.py")
ir = importlib.util.module_from_spec(spec); spec.loader.exec_module(ir)
nets = {"adaface(ir50)": (ir.ir_backbone("ir_50"), 112, 12.59), "adaface-ir101": (ir.ir_backbone("ir_101"), 112, None)}
try:
    from facenet_pytorch import InceptionResnetV1
    nets["facenet(112)"] = (InceptionResnetV1(), 112, None)
    nets["facenet-standard(160)"] = (InceptionResnetV1(), 160, None)
except ImportError as e:
    print("no facenet_pytorch:", e)
from torch.utils.flop_counter import FlopCounterMode
rows = []
for name, (net, size, _) in nets.items():
    net = net.to(dev).eval()
    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        net(torch.zeros(1, 3, size, size, device=dev))
    gf = fc.get_total_flops() / 1e9
    x = torch.rand(32, 3, size, size)  # host crops, as the pipeline has them
    res = {}
    for bs in (1, 32):
        with torch.inference_mode():
            for _ in range(3):
                net(x[:bs].to(dev))
            torch.cuda.synchronize()
            ts = []
            for _ in range(5):
                t = time.perf_counter()
                for i in range(0, 32, bs):
                    y = net(x[i:i + bs].to(dev)); y = (y[0] if isinstance(y, tuple) else y).cpu()
                torch.cuda.synchronize(); ts.append(time.perf_counter() - t)
        res[bs] = 32 / min(ts)
    row = dict(model=name, gflop_per_face=round(gf, 2), fps_b1=round(res[1], 1), fps_b32=round(res[32], 1),
               speedup=round(res[32] / res[1], 1), gflops_b32=round(gf * res[32], 1), pct_peak=round(100 * gf * res[32] / peak, 1))
    rows.append(row); print(row, flush=True)
os.makedirs(os.environ.get("OUT", "/tmp/out"), exist_ok=True)
json.dump({"peak_gflops": peak, "rows": rows, "gpu": torch.cuda.get_device_name(0)}, open(os.path.join(os.environ.get("OUT", "/tmp/out"), "gpu_bench.json"), "w"), indent=1)
