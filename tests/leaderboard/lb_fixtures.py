"""Helpers that build small run directories (results.json + cases.jsonl + images) the way the runner does."""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

# distinctive colours, so a screenshot can prove each image kind was rendered
GEN_RGB = (230, 0, 230)
GT_RGB = (0, 170, 200)
REF_RGB = (250, 140, 0)


def base_results(model: str = "mymodel", **over: Any) -> dict[str, Any]:
    """A complete schema_version-1 results.json (contract in CONTRACTS.md) with both protocols."""
    def entry(v: float | None, n: int, ci: list[float] | None, stat: str) -> dict[str, Any]:
        return {"value": v, "n": n, "ci95": ci, "statistic": stat}

    paper_p1 = {
        "sim_gt.arcface": entry(0.41, 10, None, "iqr_trimmed_mean"),
        "sim_ref.arcface": entry(0.55, 10, None, "iqr_trimmed_mean"),
        "copy_paste.arcface": entry(0.12, 9, None, "iqr_trimmed_mean"),
        "sim_gt.average": entry(0.43, 20, None, "iqr_trimmed_mean"),
        "sim_ref.average": entry(0.57, 20, None, "iqr_trimmed_mean"),
        "copy_paste.average": entry(0.13, 18, None, "iqr_trimmed_mean"),
        # the paper's CP column is Sim(GT)-filtered: the runner writes it next to the unfiltered one
        "copy_paste_ranked.arcface": entry(0.12, 9, None, "iqr_trimmed_mean"),
        "copy_paste_ranked.average": entry(0.13, 18, None, "iqr_trimmed_mean"),
        "clip_t": entry(0.31, 10, None, "iqr_trimmed_mean"),
    }
    strict_p1 = {
        "sim_gt.average": entry(0.42, 20, [0.40, 0.44], "mean"),
        "copy_paste.average": entry(0.14, 18, [0.10, 0.18], "mean"),
        "copy_paste_ranked.average": entry(0.14, 18, [0.10, 0.18], "mean"),
        "face_failure_rate.average": entry(0.05, 20, None, "pooled_rate"),
    }
    d: dict[str, Any] = {
        "schema_version": 1, "model": model,
        "bench": {"id": "demo", "manifest_sha256": "a" * 64, "n_cases": 10},
        "protocol": "paper", "profile": {"name": "paper", "entries": []}, "config": {"seed": 0},
        "reportable": True, "mbench_version": "0.1.0", "packages": {"numpy": "2"}, "weights": {"arcface": "b" * 64},
        "cards": {"sim_gt": "1.0.0", "copy_paste": "1.0.0", "sim_ref": "1.0.0", "clip_t": "1.0.0"},
        "counts": {"expected": 10, "evaluated": 10, "failed": 0},
        "work": {"images_decoded": 30}, "created": "2026-01-01T00:00:00Z",
        "metrics": {"paper": {"p1": paper_p1, "all": copy.deepcopy(paper_p1)},
                    "strict": {"p1": strict_p1, "all": copy.deepcopy(strict_p1)}},
    }
    d.update(over)
    return d


def _image(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (160, 120)) -> str:
    from PIL import Image

    Image.new("RGB", size, rgb).save(path)
    return path.name


def write_run(root: Path, results: dict[str, Any], cases: list[dict[str, Any]] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps(results), encoding="utf-8")
    if cases is not None:
        with open(root / "cases.jsonl", "w", encoding="utf-8") as f:
            for c in cases:
                f.write(json.dumps(c) + "\n")
    return root


def demo_cases(root: Path, n: int = 4, fail_last: bool = True) -> list[dict[str, Any]]:
    """Rows with images, detections (runner layout: detector -> view -> faces), scores and a failure."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        cid = f"p1_{i:04d}"
        gen = _image(root / f"{cid}_gen.png", GEN_RGB)
        gt = _image(root / f"{cid}_gt.png", GT_RGB, (200, 150))
        ref = _image(root / f"{cid}_ref0.png", REF_RGB, (100, 100))
        failed = fail_last and i == n - 1
        face = {"box": [40.0, 20.0, 100.0, 90.0], "score": 0.99, "landmarks": []}
        rows.append({
            "case_id": cid, "subset": "p1", "prompt": f"a person number {i}",
            "status": "failed" if failed else "ok",
            "reason": "no face detected in the generated image" if failed else None,
            "images": {"generated": gen, "gt": gt, "refs": [ref]},
            "boxes": [[50.0, 30.0, 120.0, 110.0]],
            "faces": {"scrfd": {"generated": [] if failed else [face], "gt": [face], "ref_0": [face]}},
            "scores": {"paper": {"arcface": {"sim_gt": None if failed else 0.30 + 0.1 * i,
                                             "copy_paste": None if failed else 0.20 - 0.05 * i, "n_gen": 1}}},
            "general": {"clip_t": 0.3 + 0.01 * i},
        })
    return rows
