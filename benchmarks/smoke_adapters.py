"""Smoke-test every installed adapter: one demo case at few steps, timing, peak memory, a PNG, a verdict.

Why: the model adapters are tested in CI against fake pipelines only; this is the first real image. Run it
on a GPU machine after ``mbench setup-env NAME`` (worker adapters) or installing an extra (diffusers ones)
and fetching the weights. It runs on a CPU too (``dummy`` always works there, which checks the script).

Usage:
    python benchmarks/smoke_adapters.py                      # every installed adapter (see below)
    python benchmarks/smoke_adapters.py --models dummy,uno --steps 4 --out runs/smoke --device cuda

"Installed" means: worker adapters have an environment (``mbench setup-env`` record, ``MBENCH_<NAME>_PYTHON``
or ``-S python=``); diffusers adapters and WithAnyone have their weights in the Hugging Face cache; GPT has
``OPENAI_API_KEY``; ``dummy`` always. Each adapter gets the first demo case it can run (multi-person when it
supports that) under its default (paper) preset, with its step setting lowered to ``--steps``.

Output: ``OUT/<adapter>.png``, ``OUT/smoke.json`` (all figures), one line per adapter on stdout:
``<name>: OK 1024x1024 in 12.3 s (load 40.1 s), peak GPU 23456 MiB, RSS 2048 MiB -> OUT/<name>.png``.
Peak GPU memory is sampled with ``nvidia-smi`` (so worker subprocesses count) every 0.2 s, minus the usage
before the adapter loaded; RSS is this process's and its children's peak resident memory.
Exit status: 0 when every attempted adapter made a non-blank image, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

STEP_KEYS = ("num_inference_steps", "num_steps")


class GpuSampler:
    """Peak ``memory.used`` (MiB, summed over GPUs) from nvidia-smi while running; None without nvidia-smi."""

    def __init__(self, interval: float = 0.2) -> None:
        self.exe = shutil.which("nvidia-smi")
        self.interval, self.peak, self.base = interval, None, None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> int | None:
        if not self.exe:
            return None
        try:
            out = subprocess.run([self.exe, "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5).stdout
            return sum(int(x) for x in out.split() if x.strip().isdigit())
        except (OSError, subprocess.TimeoutExpired, ValueError):
            return None

    def __enter__(self) -> "GpuSampler":
        self.base = self._read()
        if self.base is not None:
            self.peak = self.base
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            v = self._read()
            if v is not None and (self.peak is None or v > self.peak):
                self.peak = v

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    @property
    def used_mib(self) -> int | None:
        return None if self.peak is None or self.base is None else self.peak - self.base


def rss_mib() -> int:
    """Peak resident memory of this process plus its (waited-for) children, MiB (Linux ru_maxrss is KiB)."""
    self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return int((self_kib + child_kib) / 1024)


def installed(name: str) -> tuple[bool, str]:
    """Whether ``name`` can be tried here, and why (or why not)."""
    from multiid_bench.adapters import adapter_class, get_adapter
    from multiid_bench.adapters.inventory import weight_presence

    caps = adapter_class(name).capabilities
    if name == "dummy":
        return True, "builtin"
    if caps.integration == "builtin":
        return False, "not a generator"
    if caps.integration == "worker":
        _python, _repo, origin = get_adapter(name).environment()
        return origin != "the current interpreter", f"environment from {origin}"
    if caps.integration == "api":
        return bool(os.environ.get("OPENAI_API_KEY")), "OPENAI_API_KEY " + ("set" if os.environ.get("OPENAI_API_KEY") else "unset")
    presence, _ = weight_presence(caps.weight_ids)
    return presence == "present", f"weights {presence}"


def pick_case(adapter: Any, cases: list[Any]) -> Any | None:
    """The first demo case the adapter can run, preferring a multi-person one when it supports several ids."""
    runnable = [c for c in cases if adapter.not_applicable_reason(c) is None]
    multi = [c for c in runnable if len(c.refs) > 1]
    return (multi or runnable or [None])[0]


def is_blank(image: Any) -> bool:
    """A (nearly) constant image: the usual look of NaN latents or a black safety-checker output."""
    from PIL import ImageStat

    return max(ImageStat.Stat(image.convert("L")).stddev) < 1.0


def smoke_one(name: str, cases: list[Any], steps: int, device: str, out: Path) -> dict[str, Any]:
    from multiid_bench.adapters import get_adapter
    from multiid_bench.adapters.base import derive_seed
    from multiid_bench.errors import MBenchError

    row: dict[str, Any] = {"adapter": name, "device": device}
    probe = get_adapter(name)
    settings = {k: steps for k in STEP_KEYS if k in probe.settings}
    adapter = get_adapter(name, **settings)
    case = pick_case(adapter, cases)
    if case is None:
        return {**row, "verdict": "SKIPPED", "reason": "no demo case is applicable"}
    row.update(case_id=case.id, n_ids=len(case.refs), settings=settings)
    with GpuSampler() as gpu:
        t0 = time.perf_counter()
        try:
            adapter.load(device)
        except MBenchError as e:
            row.update(verdict="LOAD FAILED", reason=f"{type(e).__name__}: {e}", exit_code=e.exit_code)
            return row
        t1 = time.perf_counter()
        result = adapter.generate(case, derive_seed(0, case.id))
        t2 = time.perf_counter()
    close = getattr(adapter, "close", None)
    if callable(close):
        close()
    row.update(load_s=round(t1 - t0, 2), generate_s=round(t2 - t1, 2), peak_gpu_mib=gpu.used_mib, rss_mib=rss_mib())
    if result.status != "ok":
        row.update(verdict="FAILED", reason=result.reason)
        return row
    png = out / f"{name}.png"
    result.image.save(png)
    blank = is_blank(result.image)
    row.update(verdict="BLANK IMAGE" if blank else "OK", size=list(result.image.size), png=str(png),
               prompt=result.record.prompt)
    return row


def line(row: dict[str, Any]) -> str:
    name, verdict = row["adapter"], row["verdict"]
    if verdict in ("OK", "BLANK IMAGE"):
        gpu = f"peak GPU {row['peak_gpu_mib']} MiB, " if row.get("peak_gpu_mib") is not None else "no GPU, "
        w, h = row["size"]
        return (f"{name}: {verdict} {w}x{h} in {row['generate_s']:.1f} s (load {row['load_s']:.1f} s), {gpu}"
                f"RSS {row['rss_mib']} MiB, case {row['case_id']} ({row['n_ids']} id) -> {row['png']}")
    return f"{name}: {verdict}: {str(row.get('reason', '')).splitlines()[0][:300]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=None, help="Comma list (default: every installed adapter).")
    ap.add_argument("--steps", type=int, default=4, help="Denoising steps (each adapter's step setting).")
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 (auto: cuda if available).")
    ap.add_argument("--out", type=Path, default=Path("runs/smoke-adapters"))
    ap.add_argument("--bench", default="demo", help="Bench to take the case from (default: the offline demo).")
    args = ap.parse_args(argv)

    from multiid_bench.adapters import list_adapters
    from multiid_bench.data import load_bench

    device = args.device
    if device == "auto":
        try:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        except ImportError:
            device = "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    cases = list(load_bench(args.bench).cases)
    names = args.models.split(",") if args.models else list_adapters()
    rows = []
    for name in names:
        ok, why = installed(name) if not args.models else (True, "requested")
        if not ok:
            if args.models is None and why != "not a generator":
                print(f"{name}: NOT INSTALLED ({why})")
            continue
        try:
            row = smoke_one(name, cases, args.steps, device, args.out)
        except Exception as e:  # noqa: BLE001 - one broken adapter must not hide the others' verdicts
            row = {"adapter": name, "verdict": "ERROR", "reason": f"{type(e).__name__}: {e}"}
        rows.append(row)
        print(line(row), flush=True)
    (args.out / "smoke.json").write_text(json.dumps({"device": device, "steps": args.steps, "python": sys.version,
                                                     "rows": rows}, indent=2))
    return 0 if rows and all(r["verdict"] == "OK" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
