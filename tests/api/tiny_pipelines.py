"""Tiny random-init Stable Diffusion pipelines for the API tests: built on the CPU in about a second, no download.

``img2img()`` takes the references as ``image=`` (the documented call convention); ``text2img()`` takes no
image input, so ``mb.evaluate`` must refuse it.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference_model"))

from refmodel_tiny import WORDS, word_tokenizer  # noqa: E402


def components(seed: int = 0) -> dict:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                norm_num_groups=4, attention_head_dim=2).eval()
    vae = AutoencoderKL(block_out_channels=(4, 4, 4, 8), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        norm_num_groups=4, sample_size=16).eval()
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(WORDS) + 3, hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
                                        eos_token_id=2, pad_token_id=0, bos_token_id=0)).eval()
    return dict(unet=unet, vae=vae, text_encoder=text, tokenizer=word_tokenizer(77),
                scheduler=DDIMScheduler(num_train_timesteps=100, steps_offset=1), safety_checker=None, feature_extractor=None,
                requires_safety_checker=False)


def img2img(seed: int = 0):
    from diffusers import StableDiffusionImg2ImgPipeline

    pipe = StableDiffusionImg2ImgPipeline(**components(seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def text2img(seed: int = 0):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(**components(seed))
    pipe.set_progress_bar_config(disable=True)
    return pipe
