"""Helpers for tests/reference_model: tiny random FLUX components built from configs.

Transformer, VAE, CLIP/T5 text encoders and word-level tokenizers.

Everything is built on the CPU in a fraction of a second; no file or network access.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

WORDS = ["two", "people", "a", "man", "woman", "smiling", "in", "park", "cafe", "portrait", "photo", "of"]


def word_tokenizer(max_length: int):
    """A word-level tokenizer over :data:`WORDS` (unknown words map to [UNK]); no file or network access."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]",
                                   model_max_length=max_length)


TINY_TRANSFORMER = dict(patch_size=1, in_channels=16, num_layers=2, num_single_layers=2, attention_head_dim=16,
                        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                        axes_dims_rope=[4, 6, 6], guidance_embeds=True)


def tiny_transformer(seed: int = 0):
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(seed)
    return FluxTransformer2DModel(**TINY_TRANSFORMER).eval()


def tiny_adapter(transformer, *, siglip_branch: bool = False, seed: int = 1, visible: bool = True):
    """Adapter sized from the transformer config. ``visible`` re-draws the LayerNorm weights around 1 so the
    (otherwise near-zero, official-init) cross-attention output is large enough to see in tests."""
    from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter

    torch.manual_seed(seed)
    adapter = WithAnyoneAdapter.from_transformer_config(
        transformer.config, siglip_branch=siglip_branch, ca_head_dim=8, num_siglip_tokens=4, siglip_dim=12)
    if visible:
        with torch.no_grad():
            for name, p in adapter.named_parameters():
                if (".norm1." in name or ".norm2." in name) and name.endswith("weight"):
                    p.add_(1.0)
    return adapter.eval()


@dataclass
class Components:
    scheduler: object
    vae: object
    text_encoder: object
    tokenizer: object
    text_encoder_2: object
    tokenizer_2: object
    transformer: object

    def as_kwargs(self) -> dict:
        return dict(self.__dict__)


def tiny_components(seed: int = 0) -> Components:
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(WORDS) + 3, hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4,
        max_position_embeddings=77, projection_dim=32, eos_token_id=2, pad_token_id=0, bos_token_id=0)).eval()
    t5 = T5EncoderModel(T5Config(vocab_size=len(WORDS) + 3, d_model=32, d_kv=8, d_ff=37, num_layers=1,
                                 num_heads=4, relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=2)).eval()
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[4, 4, 4, 4], layers_per_block=1,
                        latent_channels=4, norm_num_groups=1, sample_size=32, use_quant_conv=False,
                        use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_image_seq_len=256,
                                                max_image_seq_len=4096, base_shift=0.5, max_shift=1.15)
    return Components(scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=word_tokenizer(77), text_encoder_2=t5,
                      tokenizer_2=word_tokenizer(16), transformer=tiny_transformer(seed))


def transformer_inputs(transformer, height: int = 64, width: int = 64, batch: int = 1, seed: int = 3) -> dict:
    """Random packed latents + text for one transformer call at H x W (vae scale 8, 2x2 packing)."""
    g = torch.Generator().manual_seed(seed)
    gh, gw = height // 16, width // 16
    ids = torch.zeros(gh * gw, 3)
    ids[:, 1] = torch.arange(gh * gw) // gw
    ids[:, 2] = torch.arange(gh * gw) % gw
    cfg = transformer.config
    return dict(
        hidden_states=torch.randn(batch, gh * gw, cfg.in_channels, generator=g),
        encoder_hidden_states=torch.randn(batch, 6, cfg.joint_attention_dim, generator=g),
        pooled_projections=torch.randn(batch, cfg.pooled_projection_dim, generator=g),
        timestep=torch.full((batch,), 0.6), img_ids=ids, txt_ids=torch.zeros(6, 3),
        guidance=torch.full((batch,), 4.0),
    )
