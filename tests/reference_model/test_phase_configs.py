"""Every shipped phase config trains on MultiID-2M as released: records carry boxes and embeddings but no
landmarks, so the GT landmarks of the ID loss must come from ``data.detector`` (issue 18).

The record is a real photo (insightface's t1.jpg, two faces) written in the released webdataset layout
(jpg + json + pickled-dict npy without ``landmarks``) and read back through ``open_source``. The configured
detector (RetinaFace, paper App.) cannot be downloaded here, so MTCNN, whose weights ship with
facenet-pytorch, stands in through the same loading path (``train.make_landmark_detector`` ->
``multiid_bench.faces.load_detector``).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "reference_model" / "configs").glob("*.toml"))


@pytest.fixture(scope="module")
def released_layout(tmp_path_factory):
    """(shard folder, MTCNN landmark detector): one landmark-less two-face record in the MultiID-2M layout."""
    import insightface
    from PIL import Image

    from multiid_bench.reference_model.data import write_shard
    from multiid_bench.reference_model.train import make_landmark_detector

    photo = Image.open(os.path.join(os.path.dirname(insightface.__file__), "data/images/t1.jpg")).convert("RGB")
    h = photo.height
    buf = io.BytesIO()  # a square 512² record: the training crop is the whole image, unchanged
    photo.crop((0, 0, h, h)).resize((512, 512), Image.Resampling.LANCZOS).save(buf, format="JPEG", quality=95)
    jpg = buf.getvalue()
    img = np.asarray(Image.open(io.BytesIO(jpg)).convert("RGB"))
    detect = make_landmark_detector("mtcnn")
    boxes, _ = detect(img)
    two = boxes[np.argsort(boxes[:, 0])[:2]]  # the two leftmost faces, as the dataset's (SCRFD) boxes
    rng = np.random.default_rng(0)
    meta = {"caption_en": "two people at a party", "bboxes": two.tolist(), "names": ["none", "none"],
            "url": "t1", "ram_score": 0.5, "aesthetics_score": 5.0}
    payload = {"bboxes": two.astype(np.float32), "embeddings": rng.normal(size=(2, 512)).astype(np.float32) * 20}
    root = tmp_path_factory.mktemp("multiid2m")
    write_shard(root / "train_rec" / "000000.tar", [("000000001", jpg, meta, payload)])
    (root / "ref").mkdir()  # REF_DIR of the SigLIP paired configs (no photos: paired samples fall back)
    seen: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def cached(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # every config crops the same pixels (the whole 512² image): MTCNN runs once, on the setup image
        key = pixels.tobytes()
        if key not in seen:
            seen[key] = detect(pixels)
        return seen[key]

    return root, cached


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_each_phase_config_builds_a_sample_from_a_landmark_less_record(config, released_layout):
    from multiid_bench.faces import DETECTORS
    from multiid_bench.reference_model.batches import RecordError
    from multiid_bench.reference_model.data import open_source
    from multiid_bench.reference_model.train_components import sample_builder
    from multiid_bench.reference_model.train_config import load_config

    root, detect = released_layout
    shards = root / "train_rec"
    cfg = load_config(config, overrides={"data": {"paths": [str(shards)], "ref_dir": str(root / "ref")}})
    assert cfg.data.detector == "retinaface" and cfg.data.detector in DETECTORS
    assert cfg.loss.lambda_id > 0 and cfg.data.need_landmarks
    rec = open_source(shards).read(0)
    assert rec.landmarks is None and len(rec.boxes) == 2
    sample, events = sample_builder(cfg, None, detect)(rec, np.random.default_rng(1), 0)
    assert sample["pixels"].shape == (cfg.data.resolution, cfg.data.resolution, 3)
    assert sample["lm_valid"][:2].all() and not sample["lm_valid"][2:].any()
    assert "face_without_landmarks" not in events
    for i in range(2):  # the detected landmarks lie in the face they were matched to
        x1, y1, x2, y2 = sample["boxes"][i]
        cx, cy = sample["landmarks"][i].mean(axis=0)
        assert x1 < cx < x2 and y1 < cy < y2
    if cfg.model.branch == "sig":
        assert sample["ref_crops"].shape[1:] == (cfg.data.siglip_crop_size, cfg.data.siglip_crop_size, 3)
    # without a detector the same record is unusable (what every released record did before issue 18)
    with pytest.raises(RecordError) as err:
        sample_builder(cfg, None, None)(rec, np.random.default_rng(1), 0)
    assert err.value.reason == "no_face_for_id_loss"
