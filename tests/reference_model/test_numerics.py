"""Timesteps and ``numerics="official"`` against the released code's arithmetic, written here from the official
``sampling.py`` / ``pipeline.py`` / ``model.py`` (spec §2.4, issue 18), on tiny random bf16 components.

Released: ``t_vec = full(t, dtype=bf16)``; ``timestep_embedding`` multiplies by 1000 in bf16;
``img = img + (t_prev - t_curr) * pred`` in bf16; ``ae.decode(x.float())`` in fp32;
``uint8(127.5 (clamp(x) + 1))`` (truncation); after double blocks ``img + l_a CA_a + l_s CA_s`` (left to right),
after single blocks ``img + (l_a CA_a + l_s CA_s)``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest_train import one_thread  # noqa: F401  (fixture)
from refmodel_tiny import tiny_adapter, tiny_components

from multiid_bench.reference_model.pipeline import WithAnyonePipeline

BF16 = torch.bfloat16
pytestmark = pytest.mark.usefixtures("one_thread")
BOXES = [[0.0, 0.0, 32.0, 32.0], [40.0, 16.0, 96.0, 64.0]]


def released_schedule(steps: int, height: int, width: int) -> list[float]:
    """``get_schedule(steps, (W // 8) * (H // 8) // 256)``: fp32 torch linspace, exponential shift."""
    seq = (width // 8) * (height // 8) // 256
    m = (1.15 - 0.5) / (4096 - 256)
    mu = m * seq + (0.5 - m * 256)
    t = torch.linspace(1, 0, steps + 1)
    return (math.exp(mu) / (math.exp(mu) + (1 / t - 1) ** 1.0)).tolist()


def bf16_pipe(siglip_branch: bool = False) -> WithAnyonePipeline:
    comps = tiny_components()
    adapter = tiny_adapter(comps.transformer, siglip_branch=siglip_branch)
    for module in (comps.transformer, comps.vae, comps.text_encoder, comps.text_encoder_2, adapter):
        module.to(BF16)
    return WithAnyonePipeline(**comps.as_kwargs(), adapter=adapter)


@pytest.fixture(scope="module")
def pipe():
    return bf16_pipe()


@pytest.fixture(scope="module")
def arcface():
    return torch.randn(2, 512, generator=torch.Generator().manual_seed(5)) * 20


def _text(pipe):
    g = torch.Generator().manual_seed(9)
    return {"prompt_embeds": torch.randn(1, 16, 32, generator=g).to(BF16),
            "pooled_prompt_embeds": torch.randn(1, 32, generator=g).to(BF16)}


@pytest.mark.parametrize("numerics", ["default", "official"])
def test_no_timestep_differs_from_the_official_schedule_after_the_bf16_path(pipe, arcface, numerics):
    """What reaches the time embedding equals the released ``1000 * bf16(sigma_k)`` (bf16) at every step.

    Casting ``1000 sigma`` to bf16 before the /1000 (diffusers' FluxPipeline, and this pipeline before
    issue 18) changes 9 of the 25 steps at 512²."""
    seen: list[torch.Tensor] = []
    handle = pipe.transformer.time_text_embed.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))
    try:
        pipe(arcface_embeddings=arcface, boxes=[[0, 0, 256, 256], [256, 0, 512, 512]], height=512, width=512,
             num_inference_steps=25, seed=0, numerics=numerics, output_type="latent", **_text(pipe))
    finally:
        handle.remove()
    sig = released_schedule(25, 512, 512)
    want = torch.tensor(sig[:-1], dtype=torch.float32).to(BF16) * 1000.0  # t_vec bf16, time_factor * t in bf16
    got = torch.cat(seen)
    assert got.dtype == BF16 and got.shape == want.shape
    assert torch.equal(got, want), f"steps off the official timestep: {(got != want).nonzero().flatten().tolist()}"


def test_official_numerics_is_the_released_loop_and_decode(pipe, arcface):
    """Latents: the released bf16 Euler loop driven by hand through the same transformer; pixels: fp32 VAE
    decode of those latents and truncation. The default path (fp32 Euler step, rounding) differs."""
    h, w, steps = 64, 96, 4
    text = _text(pipe)
    noise = torch.randn(1, (h // 16) * (w // 16), 16, generator=torch.Generator().manual_seed(4)).to(BF16)
    run = dict(arcface_embeddings=arcface, boxes=BOXES, height=h, width=w, num_inference_steps=steps,
               latents=noise, **text)
    lat = pipe(numerics="official", output_type="latent", **run).images
    img = pipe(numerics="official", output_type="np", **run).images
    default = pipe(output_type="latent", **run).images
    assert pipe.vae.dtype == BF16  # cast up for the decode, back afterwards

    sig = released_schedule(steps, h, w)
    assert sig[0] == 1.0 and sig[-1] == 0.0
    _, _, ids = pipe.encode_prompt(prompt=None, prompt_2=None, **text, max_sequence_length=16)
    latent_ids = pipe._prepare_latent_image_ids(1, h // 16, w // 16, "cpu", BF16)
    cond = pipe.adapter.prepare(arcface, boxes=BOXES, height=h, width=w, lambda_arc=1.0, branch_order="official")
    x = noise.clone()
    with torch.no_grad(), pipe.adapter.conditioning(cond):
        for t_curr, t_prev in zip(sig[:-1], sig[1:]):
            pred = pipe.transformer(hidden_states=x, timestep=torch.full((1,), t_curr, dtype=BF16),
                                    guidance=torch.full((1,), 4.0, dtype=BF16),
                                    pooled_projections=text["pooled_prompt_embeds"],
                                    encoder_hidden_states=text["prompt_embeds"], txt_ids=ids, img_ids=latent_ids,
                                    return_dict=False)[0]
            x = x + (t_prev - t_curr) * pred
    assert x.dtype == BF16 and torch.equal(lat, x)
    assert not torch.equal(default, x)

    vae = pipe.vae
    z = pipe._unpack_latents(x.float(), h, w, pipe.vae_scale_factor)
    z = z / vae.config.scaling_factor + vae.config.shift_factor
    with torch.no_grad():
        dec = vae.to(torch.float32).decode(z, return_dict=False)[0]
    vae.to(BF16)
    pix = (127.5 * (dec.clamp(-1, 1) + 1.0)).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(np.round(img * 255).astype(np.uint8), pix)
    rounded = np.round((dec.clamp(-1, 1) / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    assert (rounded.astype(int) - pix).max() == 1 and (rounded != pix).any()  # truncation, not rounding


def test_official_branch_order_double_blocks_one_at_a_time_single_blocks_summed():
    """bf16: after a double block ``(X + l_a CA_a) + l_s CA_s``, after a single block ``X + (l_a CA_a + l_s CA_s)``;
    the default adds the sum everywhere."""
    comps = tiny_components()
    adapter = tiny_adapter(comps.transformer, siglip_branch=True).to(BF16)
    g = torch.Generator().manual_seed(2)
    arc = torch.randn(1, 2, 512, generator=g) * 20
    sig = torch.randn(1, 2, 4, 12, generator=g)
    x = (torch.randn(1, 24, 32, generator=g) * 30).to(BF16)
    kw = dict(boxes=[BOXES], height=64, width=96, siglip=sig, lambda_arc=0.7, lambda_sig=0.3)
    official = adapter.prepare(arc, branch_order="official", **kw)
    summed = adapter.prepare(arc, **kw)
    rows = official.token_mask.rows
    n_double = adapter.config.num_double_blocks
    differs = []
    for index in (0, n_double):  # first double block, first single block
        xr = x[:, rows]
        a = adapter.ipa_arc[index](official.tokens["arc"], xr, official.masks["arc"]) * 0.7
        s = adapter.ipa_sig[index](official.tokens["sig"], xr, official.masks["sig"]) * 0.3
        one_at_a_time, at_once = x.clone(), x.clone()
        one_at_a_time[:, rows] = (xr + a) + s
        at_once[:, rows] = xr + (a + s)
        want = one_at_a_time if index < n_double else at_once
        assert torch.equal(adapter.inject(index, x, official), want)
        assert torch.equal(adapter.inject(index, x, summed), at_once)
        differs.append(not torch.equal(one_at_a_time, at_once))
    assert differs[0]  # the two orders do round differently in bf16 here


def test_siglip_runs_in_bf16_on_a_cached_copy_under_official_numerics():
    from transformers import SiglipVisionConfig, SiglipVisionModel

    from multiid_bench.reference_model.references import SiglipFaceEncoder

    torch.manual_seed(0)
    tower = SiglipVisionModel(SiglipVisionConfig(hidden_size=12, intermediate_size=16, num_hidden_layers=1,
                                                 num_attention_heads=2, image_size=32, patch_size=16)).eval()
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    enc = SiglipFaceEncoder(tower)
    crops = [torch.randint(0, 255, (40, 40, 3), generator=torch.Generator().manual_seed(1)).numpy().astype(np.uint8)]
    from PIL import Image

    crops = [Image.fromarray(c) for c in crops]
    fp32 = enc(crops)
    bf = enc.with_dtype(BF16)
    assert bf is enc.with_dtype(BF16) and next(bf.model.parameters()).dtype == BF16
    got = bf(crops)
    ref_tower = SiglipVisionModel(tower.config).eval()
    ref_tower.load_state_dict(before)
    want = SiglipFaceEncoder(ref_tower.to(BF16))(crops)
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, fp32)
    assert all(torch.equal(v, before[k]) for k, v in tower.state_dict().items())  # fp32 weights untouched
