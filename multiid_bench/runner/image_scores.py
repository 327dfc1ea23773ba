"""CLIP-I, CLIP-T and aesthetic scores per case, plugged in when the scorers and their weights exist.

A scorer whose weights are missing (offline, not downloaded) or whose package is absent is reported as
``missing`` with the reason in ``results.json``; its metric is ``null`` with that reason, never 0. Image
features are cached by content like face embeddings (the scorer card's :meth:`cache_key`), so GT
features are computed once per bench, and decoded pixels are shared with the face stage when it has
them.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from multiid_bench.errors import MBenchError, stops_run
from multiid_bench.runner.cache import FeatureCache, default_cache_root

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case
    from multiid_bench.runner.config import RunConfig

__all__ = ["GeneralScorers", "load_general_scorers"]

log = logging.getLogger(__name__)

Item = tuple["Case", str, "Path | None"]


class GeneralScorers:
    """The model-independent per-case metrics; ``status`` says which scorers run and why others do not."""

    def __init__(self, scorers: Mapping[str, Any], status: Mapping[str, dict[str, Any]], cache: FeatureCache,
                 device: str = "cpu", judge: Any | None = None) -> None:
        self.scorers = dict(scorers)
        self.judge = judge  # VLM judge (OmniContext PF/SC/Overall) for cases with meta["task_type"]
        self.judge_notes: dict[str, list[str]] = {}  # case id -> raw answers of unusable judge replies
        self.judge_failures: dict[str, str] = {}  # case id -> why the judge gave no score
        self.status = {k: dict(v) for k, v in status.items()}
        self.cache = cache
        self.device = device
        self.arrays: dict[str, np.ndarray] = {}  # path -> decoded pixels, shared by the face stage
        self.metric_plugins: dict[str, Any] = {}  # metric id -> CaseMetricPlugin (multiid_bench.faces.plugins, multiid_bench.metrics.plugins)

    def _ensure_loaded(self, name: str) -> Any | None:
        scorer = self.scorers.get(name)
        if scorer is None:
            return None
        if not scorer.loaded:
            scorer.load(self.device)
        return scorer

    def _pixels(self, path: str) -> np.ndarray:
        if path not in self.arrays:
            from multiid_bench.images import load_rgb_array

            self.arrays[path] = load_rgb_array(path)
        return self.arrays[path]

    def _features(self, scorer: Any, paths: Sequence[str]) -> dict[str, np.ndarray]:
        """Image features per path: cached ones read, the rest encoded in one batched call and stored."""
        from multiid_bench.images import image_sha256

        card = scorer.card
        out: dict[str, np.ndarray] = {}
        todo: list[tuple[str, str, str]] = []
        for p in dict.fromkeys(paths):
            key = card.cache_key(image_sha256(p))
            group, _, sha = key.rpartition("-")
            hit = self.cache.get_embeddings(group, sha)
            if hit is not None:
                out[p] = hit
            else:
                todo.append((p, group, sha))
        if todo:
            feats = scorer.encode_images([self._pixels(p) for p, _, _ in todo])
            for (p, group, sha), f in zip(todo, feats):
                out[p] = f
                self.cache.put_embeddings(group, sha, f)
        return out

    def score(self, items: Sequence[Item]) -> dict[str, dict[str, float | None]]:
        """``{case_id: {"clip_i", "clip_t", "aesthetic"}}`` (values ``None`` where not computable)."""
        result: dict[str, dict[str, float | None]] = {c.id: {} for c, _, _ in items}
        try:
            self._score_clip(items, result)
            self._score_aesthetic(items, result)
            self._score_plugins(items, result)
        except Exception as e:  # unless its policy stops the run, a scorer crash costs these values only
            if stops_run(e):
                raise
            log.warning("scorer failed on a chunk of %d cases: %s: %s", len(items), type(e).__name__, e)
        finally:
            self.arrays.clear()
        if self.judge is not None:
            from multiid_bench.judge.settings import judge_general_items

            judge_general_items(self.judge, items, result, self.judge_notes, self.judge_failures, self.device)
        return result

    def _score_clip(self, items: Sequence[Item], result: dict[str, dict[str, float | None]]) -> None:
        scorer = self._ensure_loaded("clip")
        if scorer is None or not items:
            return
        from multiid_bench.scorers.clip import clip_i_scores, clip_t_scores

        gts = [str(gt) for _, _, gt in items if gt is not None and Path(gt).is_file()]
        feats = self._features(scorer, [g for _, g, _ in items] + gts)
        text = scorer.encode_texts([c.prompt for c, _, _ in items])
        gen = np.stack([feats[g] for _, g, _ in items])
        for (case, g, gt), t_val in zip(items, clip_t_scores(gen, text)):
            result[case.id]["clip_t"] = float(t_val)
            if gt is not None and str(gt) in feats:
                result[case.id]["clip_i"] = float(clip_i_scores(feats[g][None], feats[str(gt)][None])[0])

    def _score_plugins(self, items: Sequence[Item], result: dict[str, dict[str, float | None]]) -> None:
        """Per-case metric plug-ins on the decoded pixels (generated, GT, references); ``None`` = not computable."""
        for metric_id, plugin in self.metric_plugins.items():
            for case, g, gt in items:
                gt_pixels = self._pixels(str(gt)) if gt is not None and Path(gt).is_file() else None
                value = plugin.compute(self._pixels(g), gt_pixels, [self._pixels(str(r)) for r in case.refs])
                result[case.id][metric_id] = None if value is None else float(value)

    def _score_aesthetic(self, items: Sequence[Item], result: dict[str, dict[str, float | None]]) -> None:
        scorer = self._ensure_loaded("aesthetic")
        if scorer is None or not items:
            return
        feats = self._features(scorer, [g for _, g, _ in items])
        scores = scorer.score_features(np.stack([feats[g] for _, g, _ in items]))
        for (case, _, _), s in zip(items, scores):
            result[case.id]["aesthetic"] = float(s)


def _first_line(e: BaseException) -> str:
    """The gist of an error for one table cell: its first line plus the first item it lists."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    return " ".join(lines[:2]) if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def load_general_scorers(config: "RunConfig") -> GeneralScorers:
    """Resolve (not load) each scorer's weights; unavailable ones are ``missing`` with the reason."""
    cache = FeatureCache(default_cache_root(config.cache_dir))
    from multiid_bench.judge.settings import load_run_judge

    judge, judge_status = load_run_judge(config)  # None unless --judge; missing weights stop the run (exit 3)
    if not config.scorers:
        off = {"status": "disabled", "reason": "scorers turned off (--no-scorers)"}
        return GeneralScorers({}, {"clip": dict(off), "aesthetic": dict(off), **judge_status}, cache, config.device,
                              judge)
    scorers: dict[str, Any] = {}
    status: dict[str, dict[str, Any]] = {}
    from multiid_bench.metrics.plugins import load_metric_plugins

    plugins = load_metric_plugins()
    for metric_id, (_, installed) in plugins.items():
        status[metric_id] = {"status": "ok", "reason": None, "plugin": installed.identity}
    for name, factory in (("clip", _clip), ("aesthetic", _aesthetic)):
        try:
            scorer = factory(config)
            card = scorer.resolve_weights()
        except (MBenchError, ImportError, OSError) as e:
            status[name] = {"status": "missing", "reason": _first_line(e)}
            log.info("scorer %s not available: %s", name, status[name]["reason"])
            continue
        scorers[name] = scorer
        status[name] = {"status": "ok", "reason": None, "card": card.to_dict(), "weights": dict(card.to_dict()["weights"])}
    general = GeneralScorers(scorers, {**status, **judge_status}, cache, config.device, judge)
    general.metric_plugins = {metric_id: plugin for metric_id, (plugin, _) in plugins.items()}
    return general


def _clip(config: "RunConfig") -> Any:
    from multiid_bench.scorers.clip import ClipScorer

    return ClipScorer(batch_size=config.batch_size, cache_dir=config.cache_dir, offline=config.offline)


def _aesthetic(config: "RunConfig") -> Any:
    from multiid_bench.scorers.aesthetic import AestheticScorer

    return AestheticScorer(batch_size=min(config.batch_size, 16), cache_dir=config.cache_dir, offline=config.offline)
