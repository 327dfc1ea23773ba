"""Real dlib embeddings carry identity: the same face under flip, colour jitter and a small rotation
(re-detected from the transformed photo) is closer than any two different people of t1.jpg."""
from __future__ import annotations

import numpy as np
import pytest

from multiid_bench.faces import align_faces


def _unit(e: np.ndarray) -> np.ndarray:
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def _centres(faces) -> np.ndarray:
    return np.array([[(f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2] for f in faces])


@pytest.mark.slow
def test_same_face_under_augmentation_beats_every_pair_of_people(mtcnn, dlib_model, t1, t1_faces) -> None:
    import cv2

    def embed(img, faces):
        return _unit(dlib_model.embed(align_faces(img, faces, "dlib", dlib_model.card.crop_size)))

    base = embed(t1, t1_faces)
    assert base.shape == (6, 128) and np.isfinite(base).all()
    cross = (base @ base.T)[~np.eye(6, dtype=bool)]
    hardest_pair = float(cross.max())  # the two most similar different people

    h, w = t1.shape[:2]
    centres = _centres(t1_faces)
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 6.0, 1.0)
    variants = {
        "flip": (np.ascontiguousarray(t1[:, ::-1]), np.c_[w - centres[:, 0], centres[:, 1]]),
        "colour_jitter": (np.clip(t1 * np.array([1.12, 0.95, 0.88]) + 10, 0, 255).astype(np.uint8), centres),
        "rotate_6deg": (cv2.warpAffine(t1, rot, (w, h), borderMode=cv2.BORDER_REPLICATE),
                        centres @ rot[:, :2].T + rot[:, 2]),
    }
    detected = mtcnn.detect([img for img, _ in variants.values()])  # one batched call
    for (name, (img, expected_centres)), faces in zip(variants.items(), detected):
        assert len(faces) == 6, name
        emb = embed(img, faces)
        got = _centres(faces)
        match = [int(np.argmin(np.linalg.norm(got - c, axis=1))) for c in expected_centres]
        assert sorted(match) == list(range(6)), name
        same = np.array([base[i] @ emb[j] for i, j in enumerate(match)])
        assert same.min() > hardest_pair, (name, same.round(4).tolist(), round(hardest_pair, 4))
