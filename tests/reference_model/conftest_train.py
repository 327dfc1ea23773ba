"""Trainer test helpers (imported explicitly by test_train*.py / test_losses.py / test_data.py).

* ``tiny_train_components(cfg)``: the ``model.factory`` used by the tests: a tiny random FLUX transformer,
  a tiny AutoencoderKL (scale factor 8), a hashed-word prompt encoder, the adapter sized from the transformer
  and a tiny random IResNet as the loss ArcFace. Seeded, so every process builds identical weights.
* ``write_synthetic_data(root, ...)``: records in the real MultiID-2M format (webdataset tar of
  jpg + json + pickled-dict npy), with landmarks stored per face, plus a reference folder in the official
  ``REF_DIR/<name>/<stem>.{jpg,json,npy}`` layout.
* ``tiny_config(tmp_path, **sections)``: a CPU TrainConfig over that data.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parent
FACTORY = "conftest_train:tiny_train_components"
TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                     [70.7299, 92.2041]], np.float32)
TINY_ARCFACE = dict(layers=(1, 1, 1, 1), widths=(4, 4, 8, 8), embedding_dim=512)
NAMES = ("alice", "bob", "carol", "dave", "erin", "frank")


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread on the shared 2-core machine; restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class HashedPromptEncoder(torch.nn.Module):
    """Deterministic tiny text encoder: word -> hashed row of a seeded table (no tokenizer files needed)."""

    def __init__(self, dim: int = 32, pooled: int = 32, length: int = 8, vocab: int = 97) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(11)
        self.table = torch.nn.Parameter(torch.randn(vocab, dim, generator=g), requires_grad=False)
        self.proj = torch.nn.Parameter(torch.randn(dim, pooled, generator=g) / dim**0.5, requires_grad=False)
        self.length, self.vocab = length, vocab

    @torch.no_grad()
    def __call__(self, captions: list[str]):
        import zlib

        ids = torch.zeros(len(captions), self.length, dtype=torch.long)
        for i, c in enumerate(captions):
            words = [zlib.crc32(w.encode()) % (self.vocab - 1) + 1 for w in c.lower().split()][: self.length]
            ids[i, : len(words)] = torch.tensor(words, dtype=torch.long)
        emb = self.table[ids]
        return emb, emb.mean(1) @ self.proj, torch.zeros(self.length, 3)


def tiny_train_components(cfg):
    from diffusers import AutoencoderKL, FluxTransformer2DModel

    from multiid_bench.reference_model.arcface_torch import IResNetConfig, build_iresnet
    from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter
    from multiid_bench.reference_model.train_components import Components

    torch.manual_seed(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                         attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                         pooled_projection_dim=32, axes_dims_rope=[4, 6, 6], guidance_embeds=True)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[4, 4, 4, 4], layers_per_block=1,
                        latent_channels=4, norm_num_groups=1, sample_size=64, use_quant_conv=False,
                        use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
    torch.manual_seed(1)
    adapter = WithAnyoneAdapter.from_transformer_config(transformer.config, siglip_branch=False, ca_head_dim=8)
    torch.manual_seed(2)
    arcface = build_iresnet(IResNetConfig(**TINY_ARCFACE))
    return Components(transformer, vae, HashedPromptEncoder(), adapter, arcface, vae_scale_factor=8)


def _jpeg(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth random colour field (JPEG-friendly) with darker blobs where faces are drawn later."""
    base = rng.uniform(40, 215, size=(h // 8 + 1, w // 8 + 1, 3))
    from PIL import Image

    img = Image.fromarray(base.astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(img).copy()


def face_record(rng: np.random.Generator, key: str, names: list[str], id_emb: dict[str, np.ndarray], *,
                h: int = 72, w: int = 96) -> tuple[str, np.ndarray, dict, dict]:
    """One synthetic record: faces side by side, landmarks = the ArcFace template mapped into each box."""
    img = _image(rng, h, w)
    n = len(names)
    boxes, lms, embs = [], [], []
    for i, name in enumerate(names):
        x1 = 6 + i * (w - 12) / n
        size = min((w - 12) / n - 4, h - 20)
        y1 = 8 + rng.uniform(0, h - 16 - size)
        box = [float(x1), float(y1), float(x1 + size), float(y1 + size)]
        boxes.append(box)
        lms.append((TEMPLATE / 112.0 * size + np.array([x1, y1], np.float32)).tolist())
        img[int(y1):int(y1 + size), int(x1):int(x1 + size)] //= 2
        base = id_emb.setdefault(name, rng.normal(size=512).astype(np.float32) * 1.2)
        embs.append(base + rng.normal(size=512).astype(np.float32) * 0.3)
    meta = {"caption_en": f"{' and '.join(names)} smiling in a park", "bboxes": boxes, "names": names,
            "url": f"synthetic://{key}"}
    payload = {"bboxes": np.asarray(boxes, np.float32), "embeddings": np.stack(embs).astype(np.float32),
               "landmarks": np.asarray(lms, np.float32)}
    return key, img, meta, payload


def write_synthetic_data(root: Path, *, n_records: int = 4, seed: int = 0, refs_per_name: int = 3) -> dict:
    """Shard(s) + reference folder; returns paths and the identity embeddings used."""
    from multiid_bench.reference_model.data import write_shard

    rng = np.random.default_rng(seed)
    id_emb: dict[str, np.ndarray] = {}
    recs = []
    for k in range(n_records):
        n = 1 + k % 2
        names = [NAMES[(k + j) % 4] for j in range(n)]
        recs.append(face_record(rng, f"sample{k:04d}", names, id_emb))
    shard = write_shard(root / "shards" / "train-000000.tar", recs)
    ref_dir = root / "refs"
    for name in NAMES:
        id_emb.setdefault(name, rng.normal(size=512).astype(np.float32) * 1.2)
        person = ref_dir / name
        person.mkdir(parents=True, exist_ok=True)
        for j in range(refs_per_name):
            emb = id_emb[name] + rng.normal(size=512).astype(np.float32) * 0.3
            (person / f"ref{j}.jpg").write_bytes(_jpeg(_image(rng, 40, 40)))
            (person / f"ref{j}.json").write_text(json.dumps({"bboxes": [[4, 4, 36, 36]]}))
            np.save(person / f"ref{j}.npy", np.array({"embeddings": emb[None], "bboxes": np.array([[4, 4, 36, 36]])},
                                                       dtype=object), allow_pickle=True)
    return {"shards": shard.parent, "refs": ref_dir, "id_emb": id_emb, "records": recs}


def tiny_config(tmp_path: Path, data_root: Path, bank: Path | None = None, **sections):
    """A CPU TrainConfig over synthetic data: 64 px, global batch 4, tiny components, no workers."""
    from multiid_bench.reference_model.train_config import TrainConfig

    raw = {
        "run": {"output_dir": str(tmp_path / "run"), "seed": 3, "max_steps": 6, "global_batch": 4,
                "checkpoint_every": 3, "log_every": 1, "mixed_precision": "no", "num_workers": 0},
        "optim": {"lr": 1e-3, "weight_decay": 0.01},
        "loss": {"bank_negatives": 16 if bank else 0},
        "model": {"factory": FACTORY, "factory_path": str(HERE), "gradient_checkpointing": False,
                  "frozen_dtype": "float32"},
        "data": {"paths": [str(data_root)], "resolution": 64, "max_faces": 2, "fixed_prompt": "{people}",
                 "bank": str(bank) if bank else None},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    raw["data"] = {k: v for k, v in raw["data"].items() if v is not None}
    return TrainConfig.from_dict(raw)
