"""CLIP/aesthetic plug into the runner when present; when missing they are null with a reason, never 0."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pytest
from runner_fakes import FakeWorld, run

from multiid_bench.metrics.identity import cosine_matrix
from multiid_bench.runner.cache import FeatureCache
from multiid_bench.runner.config import RunConfig
from multiid_bench.runner.image_scores import GeneralScorers, load_general_scorers
from multiid_bench.scorers.base import ScorerCard


class FakeImageScorer:
    """Features = mean colour of the image (+1); counts encoded images."""

    def __init__(self, scorer_id: str) -> None:
        self.card = ScorerCard(scorer_id, "1", ("x",), "fake", (("w/f", "ab" * 32),), "mean", "v1", "float32", 4)
        self.loaded = False
        self.encoded = 0

    def load(self, device: str) -> None:
        self.loaded = True

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        self.encoded += len(images)
        return np.stack([np.append(np.asarray(im, np.float32).reshape(-1, 3).mean(0), 1.0) for im in images])

    def encode_texts(self, prompts: Sequence[str]) -> np.ndarray:
        return np.stack([np.array([len(p), 1.0, 2.0, 3.0], np.float32) for p in prompts])

    def score_features(self, feats: np.ndarray) -> np.ndarray:
        return np.asarray(feats, np.float64)[:, 0] / 10.0


def test_scorers_fill_rows_and_cache_gt_features(world: FakeWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip, aes = FakeImageScorer("clip"), FakeImageScorer("aesthetic")
    cache = FeatureCache(tmp_path / "cache")
    status = {"clip": {"status": "ok", "reason": None}, "aesthetic": {"status": "ok", "reason": None}}

    import multiid_bench.runner.image_scores as general

    monkeypatch.setattr(general, "load_general_scorers", lambda config: GeneralScorers({"clip": clip, "aesthetic": aes}, status, cache))
    out = run(world, "ground-truth", tmp_path / "a", tmp_path / "cache", scorers=True)
    n = len(world.bench.cases)
    assert clip.encoded == 2 * n and aes.encoded == n  # generated + GT for CLIP, generated for aesthetic
    rows = [r for r in (tmp_path / "a" / "cases.jsonl").read_text().splitlines()]
    assert len(rows) == n
    m = out.results["metrics"]["strict"]["all"]
    assert m["clip_i"]["value"] == pytest.approx(1.0)  # the GT oracle's image equals the GT
    case = world.bench.cases[0]
    from multiid_bench.images import load_rgb_array

    f = np.append(load_rgb_array(case.gt).reshape(-1, 3).mean(0), 1.0)
    t = np.array([len(case.prompt), 1.0, 2.0, 3.0])
    first = [__import__("json").loads(r) for r in rows if '"case00"' in r][0]
    assert first["general"]["clip_t"] == pytest.approx(float(cosine_matrix(f[None], t[None])[0, 0]), abs=1e-6)
    assert first["general"]["aesthetic"] == pytest.approx(f[0] / 10.0, rel=1e-5)
    assert out.results["scorers"]["clip"]["status"] == "ok"

    clip.encoded = 0
    run(world, "copy-reference", tmp_path / "b", tmp_path / "cache", scorers=True)
    assert clip.encoded == n  # GT features came from the cache: only the new generated images


def test_missing_scorer_weights_are_reported_not_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MBENCH_HOME", str(tmp_path / "empty"))
    g = load_general_scorers(RunConfig(model="x", offline=True, cache_dir=str(tmp_path / "empty")))
    assert set(g.status) == {"clip", "aesthetic"}
    for st in g.status.values():
        assert st["status"] == "missing" and "weight" in st["reason"].lower()
    assert g.score([]) == {}
    off = load_general_scorers(RunConfig(model="x", scorers=False))
    assert off.status["clip"]["status"] == "disabled"


def test_scorer_status_reaches_results(world: FakeWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import multiid_bench.runner.image_scores as general

    status: dict[str, Any] = {"clip": {"status": "missing", "reason": "offline and missing model weights: clip"},
                              "aesthetic": {"status": "missing", "reason": "no siglip"}}
    monkeypatch.setattr(general, "load_general_scorers",
                        lambda config: GeneralScorers({}, status, FeatureCache(None)))
    out = run(world, "ground-truth", tmp_path / "a", tmp_path / "cache", scorers=True)
    entry = out.results["metrics"]["paper"]["all"]["clip_t"]
    assert entry["value"] is None and entry["n"] == 0 and "clip" in entry["missing_reason"]
    assert out.results["scorers"]["aesthetic"] == {"status": "missing", "reason": "no siglip"}
