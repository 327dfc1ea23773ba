"""Independent reference for the identity cross-attention (paper eq. 9, spec reference-model.md §1.2-1.7).

The oracle below is written from the spec, not from ``identity_adapter.py``: it reads the adapter's weights by
their checkpoint key names, works in fp64 with explicit Python loops over image tokens and identity tokens and
``einsum`` over channels, and adds ``lambda_b * CA_b`` to the image tokens after every block of a stock
diffusers ``FluxTransformer2DModel`` through plain forward hooks. The hooked model (our adapter) must give the
same transformer output. Weights are redrawn far from the official near-zero init, so every term (both
LayerNorms, K vs V, each head, each identity's token slice) changes the output visibly.

Mutations that this test catches (issue 18 note, docs/reference_model.md): K and V swapped in ``to_kv``;
identity tokens ordered token-major instead of identity-major; norm1 / norm2 swapped; interleaved heads.
"""
from __future__ import annotations

import math

import pytest
import torch
from refmodel_tiny import tiny_adapter, tiny_transformer, transformer_inputs

F64 = torch.float64
H, W = 64, 96
# box 0 and box 1 overlap on token column 2 (x 32..40), row 1 is partly outside both; tokens with x >= 80 too
BOXES = [[0.0, 0.0, 40.0, 32.0], [33.0, 16.0, 79.0, 64.0]]


# ------------------------------------------------------------------------------------------------ the oracle
def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def _gelu(x: torch.Tensor) -> torch.Tensor:  # exact (erf) GELU
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _mlp(sd: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    """Sequential 0 Linear, 1 GELU, 2 LayerNorm, 3 Linear (spec §1.2, §1.3)."""
    h = torch.einsum("oi,...i->...o", sd[f"{prefix}.0.weight"], x) + sd[f"{prefix}.0.bias"]
    h = _layer_norm(_gelu(h), sd[f"{prefix}.2.weight"], sd[f"{prefix}.2.bias"])
    return torch.einsum("oi,...i->...o", sd[f"{prefix}.3.weight"], h) + sd[f"{prefix}.3.bias"]


def oracle_identity_tokens(sd: dict, arcface: torch.Tensor, siglip: torch.Tensor | None, dim: int,
                           k_arc: int = 8) -> dict[str, list[list[torch.Tensor]]]:
    """Per branch: tokens[n] = the list of identity n's tokens (each (D,)), in the spec's order."""
    out: dict[str, list[list[torch.Tensor]]] = {"arc": [], "sig": []}
    for n in range(arcface.shape[0]):
        arc = _mlp(sd, "arcface_in_arc", arcface[n]).reshape(k_arc, dim)
        out["arc"].append([arc[j] for j in range(k_arc)])
        if siglip is not None:  # [T SigLIP tokens, then 8 ArcFace tokens] per identity (264 at full size)
            sig = _mlp(sd, "siglip_in_sig", siglip[n])
            arc_s = _mlp(sd, "arcface_in_sig", arcface[n]).reshape(k_arc, dim)
            out["sig"].append([sig[j] for j in range(sig.shape[0])] + [arc_s[j] for j in range(k_arc)])
    return out


def oracle_boxes_of_token(boxes: list[list[float]], height: int, width: int) -> list[set[int]]:
    """Token l = row * gw + col lies in box n iff floor(x1/16) <= col < ceil(x2/16), same for rows (§1.7)."""
    gh, gw = height // 16, width // 16
    owners = []
    for row in range(gh):
        for col in range(gw):
            owners.append({n for n, (x1, y1, x2, y2) in enumerate(boxes)
                           if math.floor(x1 / 16) <= col < math.ceil(x2 / 16)
                           and math.floor(y1 / 16) <= row < math.ceil(y2 / 16)})
    return owners


def oracle_ca(sd: dict, prefix: str, tokens: list[list[torch.Tensor]], x: torch.Tensor, owners: list[set[int]],
              heads: int, head_dim: int) -> torch.Tensor:
    """CA(E, X) = W_o softmax_mask((W_q LN2(X)) (W_k LN1(E))^T / sqrt(hd)) (W_v LN1(E)) for one sample.

    x (L, D) fp64. Heads are contiguous head_dim slices; to_kv rows = [K | V]; a token in no box gets 0."""
    inner = heads * head_dim
    w_kv = sd[f"{prefix}.to_kv.weight"]
    w_k, w_v = w_kv[:inner], w_kv[inner:]
    kv = {}  # (n, j) -> (key, value) of identity n's token j: LN1, then the K / V halves of to_kv
    for n, toks in enumerate(tokens):
        for j, e in enumerate(toks):
            e_n = _layer_norm(e, sd[f"{prefix}.norm1.weight"], sd[f"{prefix}.norm1.bias"])
            kv[n, j] = torch.einsum("oi,i->o", w_k, e_n), torch.einsum("oi,i->o", w_v, e_n)
    out = torch.zeros_like(x)
    for l in range(x.shape[0]):
        allowed = [kv[n, j] for n in sorted(owners[l]) for j in range(len(tokens[n]))]
        if not allowed:
            continue
        q = torch.einsum("oi,i->o", sd[f"{prefix}.to_q.weight"],
                         _layer_norm(x[l], sd[f"{prefix}.norm2.weight"], sd[f"{prefix}.norm2.bias"]))
        keys = torch.stack([k for k, _ in allowed])  # (J, inner)
        values = torch.stack([v for _, v in allowed])
        attended = torch.zeros(inner, dtype=F64)
        for h in range(heads):
            sl = slice(h * head_dim, (h + 1) * head_dim)
            logits = torch.einsum("d,jd->j", q[sl], keys[:, sl]) / math.sqrt(head_dim)
            p = torch.exp(logits - logits.max())
            attended[sl] = torch.einsum("j,jd->d", p / p.sum(), values[:, sl])
        out[l] = torch.einsum("oi,i->o", sd[f"{prefix}.to_out.weight"], attended)
    return out


def oracle_hooks(transformer, sd, arcface, siglip, boxes, lambdas, heads, head_dim):
    dim = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    toks = oracle_identity_tokens(sd, arcface, siglip, dim)
    owners = oracle_boxes_of_token(boxes, H, W)
    blocks = list(transformer.transformer_blocks) + list(transformer.single_transformer_blocks)

    def make(index):
        def hook(module, args, output):
            enc, img = output
            x = img[0].to(F64)
            upd = torch.zeros_like(x)
            for branch, lam in lambdas.items():
                if lam:
                    upd += lam * oracle_ca(sd, f"ipa_{branch}.{index}", toks[branch], x, owners, heads, head_dim)
            return enc, (x + upd).to(img.dtype)[None]
        return hook

    return [blk.register_forward_hook(make(i)) for i, blk in enumerate(blocks)]


# ------------------------------------------------------------------------------------------------ the test
def _redraw(adapter) -> None:
    """Weights far from the official near-zero init, different per module and per norm."""
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in adapter.named_parameters():
            if name.endswith(("norm1.weight", "norm2.weight", ".2.weight")):
                p.copy_(torch.rand(p.shape, generator=g) * 1.5 + 0.25)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 1.2 / math.sqrt(p.shape[1]))


@pytest.fixture(scope="module")
def setup():
    transformer = tiny_transformer().double()
    adapter = tiny_adapter(transformer, siglip_branch=True)
    _redraw(adapter)
    g = torch.Generator().manual_seed(11)
    arcface = torch.randn(2, 512, generator=g, dtype=F64) * 3
    siglip = torch.randn(2, adapter.config.num_siglip_tokens, adapter.config.siglip_dim, generator=g, dtype=F64)
    inputs = {k: (v.double() if v.is_floating_point() else v) for k, v in transformer_inputs(transformer, H, W).items()}
    return transformer, adapter.double(), arcface, siglip, inputs


@pytest.mark.parametrize("lambdas", [{"arc": 1.0, "sig": 0.0}, {"arc": 0.7, "sig": 0.4}], ids=["arc", "arc+sig"])
def test_hooked_transformer_matches_the_fp64_oracle(setup, lambdas):
    transformer, adapter, arcface, siglip, inputs = setup
    heads, head_dim = adapter.config.num_attention_heads, adapter.config.ca_head_dim
    sd = {k: v.detach().to(F64) for k, v in adapter.state_dict().items()}
    with torch.no_grad():
        stock = transformer(**inputs).sample
        adapter.attach(transformer)
        try:
            cond = adapter.prepare(arcface, boxes=BOXES, height=H, width=W, lambda_arc=lambdas["arc"],
                                   lambda_sig=lambdas["sig"], siglip=siglip if lambdas["sig"] else None)
            with adapter.conditioning(cond):
                ours = transformer(**inputs).sample
        finally:
            adapter.detach()
        handles = oracle_hooks(transformer, sd, arcface, siglip if lambdas["sig"] else None, BOXES, lambdas,
                               heads, head_dim)
        try:
            want = transformer(**inputs).sample
        finally:
            for h in handles:
                h.remove()
    scale = (want - stock).abs().max()
    assert scale > 0.1 * want.abs().max()  # the identity update is a large part of the output
    torch.testing.assert_close(ours, want, rtol=0, atol=1e-9 * float(want.abs().max()))
