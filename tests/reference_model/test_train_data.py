"""MultiID-2M record reading, reference bank, paired sampling and the deterministic stream."""
from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
import torch
from conftest_train import face_record, one_thread, write_synthetic_data  # noqa: F401 (fixture)

from multiid_bench.errors import BadInputError, MissingDataError
from multiid_bench.reference_model.bank import ReferenceBank, build_reference_bank, key_hash
from multiid_bench.reference_model.batches import SampleBuilder, SampleConfig, TrainStream, collate
from multiid_bench.reference_model.data import RecordError, open_source, read_npy_payload, write_shard


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    d = write_synthetic_data(root, n_records=4)
    d["bank"] = build_reference_bank(ref_dir=d["refs"]).save(root / "bank.safetensors")
    return d

pytestmark = pytest.mark.usefixtures("one_thread")


def test_tar_records_round_trip(synth):
    src = open_source(synth["shards"])
    assert len(src) == 4 and not src.index_errors
    for i, (key, img, meta, payload) in enumerate(synth["records"]):
        rec = src.read(i)
        assert rec.key == key and rec.caption == meta["caption_en"] and rec.names == tuple(meta["names"])
        np.testing.assert_array_equal(rec.embeddings, payload["embeddings"])
        np.testing.assert_array_equal(rec.boxes, payload["bboxes"])
        np.testing.assert_array_equal(rec.landmarks, payload["landmarks"])
        assert rec.image.shape == img.shape and np.abs(rec.image.astype(int) - img).mean() < 3  # JPEG


def test_crop_offset_is_subtracted_and_names_fall_back(tmp_path):
    rng = np.random.default_rng(0)
    key, img, meta, payload = face_record(rng, "k0", ["x", "y"], {})
    meta = {"caption_en": "c", "bboxes": meta["bboxes"], "crop": [5, 7, 90, 70], "keyword": "solo"}
    write_shard(tmp_path / "a.tar", [(key, img, meta, payload)])
    rec = open_source(tmp_path / "a.tar").read(0)
    np.testing.assert_allclose(rec.boxes, payload["bboxes"] - np.array([5, 7, 5, 7], np.float32))
    np.testing.assert_allclose(rec.landmarks, payload["landmarks"] - np.array([5, 7], np.float32))
    assert rec.names == ("solo", "person_1")  # keyword words, padded as the released loader does


def test_jsonl_and_folder_sources_read_the_same_fields(tmp_path, synth):
    key, img, meta, payload = synth["records"][1]
    from PIL import Image

    Image.fromarray(img).save(tmp_path / f"{key}.jpg", quality=95)
    (tmp_path / f"{key}.json").write_text(json.dumps(meta))
    np.save(tmp_path / f"{key}.npy", np.array(payload, dtype=object), allow_pickle=True)
    row = {**meta, "key": key, "image": f"{key}.jpg", "embeddings": payload["embeddings"].tolist(),
           "landmarks": payload["landmarks"].tolist(), "bboxes": payload["bboxes"].tolist()}
    (tmp_path / "list.jsonl").write_text(json.dumps(row) + "\n")
    folder, jsonl = open_source(tmp_path).read(0), open_source(tmp_path / "list.jsonl").read(0)
    for rec in (folder, jsonl):
        np.testing.assert_allclose(rec.embeddings, payload["embeddings"], rtol=1e-6)
        np.testing.assert_allclose(rec.landmarks, payload["landmarks"], rtol=1e-6)
        assert rec.names == tuple(meta["names"])


def test_npy_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    np.save(buf, np.array({"embeddings": Evil()}, dtype=object), allow_pickle=True)
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        read_npy_payload(buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, np.ones((2, 3), np.float32))
    assert read_npy_payload(buf.getvalue()).shape == (2, 3)


def _bad_shard(tmp_path):
    rng = np.random.default_rng(1)
    good = face_record(rng, "good", ["alice"], {})
    corrupt = face_record(rng, "corrupt", ["bob"], {})
    corrupt = (corrupt[0], b"\xff\xd8not a jpeg at all", corrupt[2], corrupt[3])
    mismatch = face_record(rng, "mismatch", ["carol", "dave"], {})
    mismatch[3]["embeddings"] = mismatch[3]["embeddings"][:1]
    noface = face_record(rng, "noface", ["erin"], {})
    del noface[3]["landmarks"]
    return write_shard(tmp_path / "bad.tar", [good, corrupt, mismatch, noface])


def test_bad_members_raise_counted_reasons(tmp_path):
    src = open_source(_bad_shard(tmp_path))
    keys = [src.key(i) for i in range(len(src))]
    reasons = {}
    for i, key in enumerate(keys):
        try:
            src.read(i)
        except RecordError as exc:
            reasons[key] = exc.reason
    assert reasons == {"corrupt": "decode_error", "mismatch": "boxes_embeddings_mismatch"}


def test_truncated_tar_keeps_the_records_before_the_damage(tmp_path, synth):
    data = (synth["shards"] / "train-000000.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) * 2 // 3])
    src = open_source(tmp_path / "cut.tar")
    assert 1 <= len(src) < 4
    assert src.index_errors and src.index_errors[0][0] == "corrupt_tar"


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(MissingDataError, match="does not exist"):
        open_source(tmp_path / "nope")
    with pytest.raises(MissingDataError, match="no training records"):
        open_source(tmp_path)


def test_bank_round_trip_and_negatives_exclude_own_identity(tmp_path, synth):
    bank = ReferenceBank.load(synth["bank"])
    built = build_reference_bank(ref_dir=synth["refs"])
    assert bank.names == built.names and np.array_equal(bank.embeddings, built.embeddings)
    assert len(bank.names) == 6 and len(bank) == 18
    # identity of each sampled row, found by exact match of the embedding
    row_of = {bank.embeddings[r].tobytes(): int(bank.identity[r]) for r in range(len(bank))}
    own = torch.tensor([0, 3, -1])
    negs = bank.sample_negatives(own, 200, torch.Generator().manual_seed(0))
    assert negs.shape == (3, 200, 512)
    ids = np.array([[row_of[negs[i, k].numpy().tobytes()] for k in range(200)] for i in range(3)])
    assert 0 not in ids[0] and 3 not in ids[1]
    assert set(ids[0]) == {1, 2, 3, 4, 5} and set(ids[2]) == set(range(6))  # unknown id: every identity
    with pytest.raises(MissingDataError, match="build-bank"):
        ReferenceBank.load(tmp_path / "none.safetensors")
    from safetensors.numpy import save_file

    save_file({"embeddings": np.zeros((1, 4), np.float32)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(BadInputError, match="not a reference bank"):
        ReferenceBank.load(tmp_path / "x.safetensors")


def test_pick_reference_excludes_the_target_image_and_respects_the_band():
    emb = np.eye(4, 8, dtype=np.float32) * 5
    emb[1] = emb[0] * 0.5 + np.eye(1, 8, 5, dtype=np.float32)[0] * 4  # same person, another photo (cos ~0.53)
    bank = ReferenceBank(["ann", "ben"], emb, np.array([0, 0, 0, 1]), np.array([key_hash(k) for k in "abcd"]))
    rng = np.random.default_rng(0)
    # candidates of "ann": rows 0 (cos 1, the target image itself), 1 (cos ~0.53), 2 (cos 0)
    got = bank.pick_reference("ann", emb[0], rng, exclude_hash=key_hash("a"), min_sim=0.3, max_sim=0.95)
    np.testing.assert_array_equal(got, emb[1])
    assert bank.pick_reference("ann", emb[0], rng, exclude_hash=key_hash("a"), min_sim=0.6, max_sim=0.95) is None
    assert bank.pick_reference("zoe", emb[0], rng, exclude_hash=0, min_sim=0.0, max_sim=1.0) is None
    assert bank.pick_reference("none", emb[0], rng, exclude_hash=0, min_sim=0.0, max_sim=1.0) is None


def _stream(src, bank=None, seed=0, **cfg):
    return TrainStream([src], None, SampleBuilder(SampleConfig(resolution=64, max_faces=2, **cfg), bank, None),
                       seed=seed)


def test_samples_are_cropped_square_with_faces_inside(synth):
    stream = _stream(open_source(synth["shards"]))
    for p in range(4):
        s = stream[p]
        n = int(s["face_valid"].sum())
        assert s["pixels"].shape == (64, 64, 3) and n >= 1
        assert (s["boxes"][:n] >= 0).all() and (s["boxes"][:n] <= 64).all()
        assert s["lm_valid"][:n].all()
        np.testing.assert_array_equal(s["cond_emb"], s["target_emb"])  # reconstruction: self reference


def test_paired_sampling_uses_another_image_of_the_same_identity(synth):
    bank = ReferenceBank.load(synth["bank"])
    stream = _stream(open_source(synth["shards"]), bank, paired_ratio=1.0, paired_min_sim=0.3)
    s = stream[0]
    assert s["paired"] and not s["events"]
    n = int(s["face_valid"].sum())
    for i in range(n):
        cond = s["cond_emb"][i]
        rows = [r for r in range(len(bank)) if np.array_equal(bank.embeddings[r], cond)]
        assert rows and bank.names[int(bank.identity[rows[0]])] == s_name(synth, s["key"], i)
        assert not np.array_equal(cond, s["target_emb"][i])
    # an identity the bank does not know: falls back to reconstruction, and says so
    stream = _stream(open_source(synth["shards"]), None, paired_ratio=1.0)
    s = stream[0]
    assert not s["paired"] and s["events"] == ["paired_fallback"]


def s_name(synth, key, i):
    return next(r[2]["names"][i] for r in synth["records"] if r[0] == key)


def test_stream_is_deterministic_and_independent_of_the_split(synth):
    src = open_source(synth["shards"])
    a, b = _stream(src, seed=5), _stream(src, seed=5)
    one = collate([a[p] for p in TrainStream.batch_positions(3, 4, 0, 1)])
    two = [collate([b[p] for p in TrainStream.batch_positions(3, 4, r, 2)]) for r in range(2)]
    assert one["key"] == two[0]["key"] + two[1]["key"]
    assert torch.equal(one["pixels"], torch.cat([two[0]["pixels"], two[1]["pixels"]]))
    assert torch.equal(one["identity"], torch.cat([two[0]["identity"], two[1]["identity"]]))
    assert sorted(one["key"]) == sorted(r[0] for r in synth["records"])  # one epoch = every record once


def test_bad_records_are_replaced_and_reported(tmp_path):
    stream = _stream(open_source(_bad_shard(tmp_path)), max_redraws=64)
    seen = {}
    for p in range(12):
        s = stream[p]
        assert s["key"] == "good"
        for reason, key in s["skips"]:
            seen[key.rsplit(":", 1)[1]] = reason
    assert seen == {"corrupt": "decode_error", "mismatch": "boxes_embeddings_mismatch",
                    "noface": "no_face_for_id_loss"}


def test_detector_landmarks_follow_box_order(synth):
    """Records without landmarks: detections on the GT crop, in any order, are matched to the boxes by IoU."""
    import dataclasses

    rec = open_source(synth["shards"]).read(1)  # two faces, landmarks stored
    cfg = SampleConfig(resolution=64, max_faces=2)
    ref = SampleBuilder(cfg, None, None)(rec, np.random.default_rng(0), 0)[0]  # same rng -> same crop
    calls = []

    def detector(image):
        calls.append(image.shape)
        return ref["boxes"][::-1] + 0.5, ref["landmarks"][::-1]  # most confident first = reversed order

    got = SampleBuilder(cfg, None, detector)(dataclasses.replace(rec, landmarks=None), np.random.default_rng(0), 0)[0]
    assert calls == [(64, 64, 3)] and got["lm_valid"].all()
    np.testing.assert_allclose(got["landmarks"], ref["landmarks"])

    def nothing(image):
        return np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32)

    with pytest.raises(RecordError) as err:
        SampleBuilder(cfg, None, nothing)(dataclasses.replace(rec, landmarks=None), np.random.default_rng(0), 0)
    assert err.value.reason == "no_face_for_id_loss"


def test_sample_config_validation():
    from multiid_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="multiple of 16"):
        SampleConfig(resolution=50)
    with pytest.raises(ConfigError, match="paired_ratio"):
        SampleConfig(paired_ratio=1.5)


def test_gt_landmarks_from_a_real_detector_on_a_real_photo():
    """MTCNN (weights ship with facenet-pytorch) on insightface's t1.jpg: landmarks found on the training crop
    land inside the right boxes, in box order, near where the detector puts them on the full photo."""
    import dataclasses
    import os

    import insightface
    from PIL import Image

    from multiid_bench.reference_model.data import Record
    from multiid_bench.reference_model.train import make_landmark_detector

    photo = Image.open(os.path.join(os.path.dirname(insightface.__file__), "data/images/t1.jpg")).convert("RGB")
    img = np.asarray(photo.resize((384, 266), Image.Resampling.LANCZOS))
    detect = make_landmark_detector("mtcnn")
    boxes, lms = detect(img)
    order = np.argsort(boxes[:, 0])[:2][::-1]  # two leftmost faces, right one first (not detector order)
    rec = Record("t1", "insightface", img, "two people", boxes[order], np.zeros((2, 512), np.float32),
                 ("a", "b"), None)
    cfg = SampleConfig(resolution=256, max_faces=2)
    got, _ = SampleBuilder(cfg, None, detect)(rec, np.random.default_rng(0), 0)
    assert got["lm_valid"].all()
    with_truth = SampleBuilder(cfg, None, None)(dataclasses.replace(rec, landmarks=lms[order]),
                                                np.random.default_rng(0), 0)[0]
    for i in range(2):
        x1, y1, x2, y2 = got["boxes"][i]
        cx, cy = got["landmarks"][i].mean(axis=0)
        assert x1 < cx < x2 and y1 < cy < y2
        size = x2 - x1
        assert np.abs(got["landmarks"][i] - with_truth["landmarks"][i]).max() < 0.15 * size
