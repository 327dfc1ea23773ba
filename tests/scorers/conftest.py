"""Tiny random models of the real families, saved in the real file formats and loaded by the real loaders.

* CLIP: an open_clip config (2 layers, width 32, 77-token text with the real BPE vocabulary) registered
  with ``open_clip.add_model_config``, random weights saved as ``.safetensors``.
* Aesthetic: a full ``SiglipModel`` (vision + text, like the Hub checkpoint) saved with ``save_pretrained``
  plus a v2.5 head on its width saved as a ``.pth`` state dict.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from scorers_tiny import TINY_CLIP, TINY_CLIP_CFG, TINY_SIGLIP_VISION

@pytest.fixture(scope="session")
def images() -> list:
    """Eight RGB images of different sizes and aspect ratios (random pixels, fixed seed)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    sizes = [(50, 40), (40, 50), (64, 64), (33, 47), (90, 31), (32, 32), (47, 33), (70, 52)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


@pytest.fixture(scope="session")
def tiny_clip_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Registers the tiny open_clip config and returns a random checkpoint for it (QuickGELU, as OpenAI)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("tiny_clip")
    cfg_path = root / f"{TINY_CLIP}.json"
    cfg_path.write_text(json.dumps(TINY_CLIP_CFG))
    open_clip.add_model_config(cfg_path)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP, force_quick_gelu=True)
    ckpt = root / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt))
    return ckpt


@pytest.fixture(scope="session")
def clip_scorer(tiny_clip_checkpoint: Path):
    from multiid_bench.scorers.clip import ClipScorer

    scorer = ClipScorer(TINY_CLIP, "random-test", checkpoint=tiny_clip_checkpoint, quick_gelu=True, batch_size=8)
    scorer.load("cpu")
    return scorer


@pytest.fixture(scope="session")
def tiny_siglip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(folder with config.json + model.safetensors of a full SiglipModel, head .pth)``."""
    import torch
    from transformers import SiglipConfig, SiglipModel

    from multiid_bench.scorers._aesthetic_model import AestheticHead

    root = tmp_path_factory.mktemp("tiny_siglip")
    torch.manual_seed(0)
    cfg = SiglipConfig(
        vision_config=TINY_SIGLIP_VISION,
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
                     "vocab_size": 64, "max_position_embeddings": 16, "bos_token_id": 1, "eos_token_id": 2,
                     "pad_token_id": 0},
    )
    folder = root / "siglip"
    SiglipModel(cfg).save_pretrained(folder)
    # the Hub folder also holds the processor settings (the PyPI package's loader reads them)
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    side = TINY_SIGLIP_VISION["image_size"]
    SiglipImageProcessorPil(size={"height": side, "width": side}).save_pretrained(folder)
    head = AestheticHead(TINY_SIGLIP_VISION["hidden_size"])
    # the released head is stored in bf16; store ours the same way so the loader's upcast is exercised
    head_path = root / "aesthetic_predictor_v2_5.pth"
    torch.save(OrderedDict((k, v.to(torch.bfloat16)) for k, v in head.state_dict().items()), head_path)
    return folder, head_path


@pytest.fixture(scope="session")
def aesthetic_fp32(tiny_siglip: tuple[Path, Path]):
    from multiid_bench.scorers.aesthetic import AestheticScorer

    folder, head = tiny_siglip
    scorer = AestheticScorer(siglip_dir=folder, head=head, dtype="float32", batch_size=8)
    scorer.load("cpu")
    return scorer
