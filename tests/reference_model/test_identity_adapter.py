"""Identity adapter: exactness of the masked injection on a tiny random FLUX (CPU)."""
from __future__ import annotations

import math

import pytest
import torch
from refmodel_tiny import tiny_adapter, tiny_transformer, transformer_inputs

from multiid_bench.errors import BadInputError, ConfigError
from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter, build_token_mask

H, W = 64, 96  # non-square: 4 x 6 token grid, catches row/column mix-ups
BOXES = [[0.0, 0.0, 30.0, 30.0], [50.0, 20.0, 96.0, 64.0]]  # disjoint: tokens {0,1,6,7} and {9..11,15..17,21..23}


def _oracle_tokens(box, height=H, width=W, p=16):
    """Brute force: token (r, c) is in the box iff floor(y1/p) <= r < ceil(y2/p) and floor(x1/p) <= c < ceil(x2/p)."""
    gh, gw = height // p, width // p
    x1, y1, x2, y2 = box
    return {
        r * gw + c for r in range(gh) for c in range(gw)
        if math.floor(x1 / p) <= c < math.ceil(x2 / p) and math.floor(y1 / p) <= r < math.ceil(y2 / p)
    }


def _block0_output(transformer, inputs):
    """Image stream after double block 0 (after the adapter's hook, which was registered first)."""
    seen = {}

    def grab(module, args, output):
        seen["h"] = output[1]  # returns None: observe, do not replace

    handle = transformer.transformer_blocks[0].register_forward_hook(grab)
    try:
        with torch.no_grad():
            transformer(**inputs)
    finally:
        handle.remove()
    return seen["h"]


def test_mask_follows_outward_rounding_rule_and_token_order():
    tm = build_token_mask(BOXES + [[17.0, 3.0, 33.0, 15.0]], H, W)
    assert tm.grid == (4, 6)
    for i, box in enumerate(BOXES + [[17.0, 3.0, 33.0, 15.0]]):
        got = set(torch.nonzero(tm.in_box[0, i]).flatten().tolist())
        assert got == _oracle_tokens(box)
    assert set(tm.rows.tolist()) == set().union(*(_oracle_tokens(b) for b in BOXES + [[17.0, 3.0, 33.0, 15.0]]))
    assert _oracle_tokens([17.0, 3.0, 33.0, 15.0]) == {1, 2}


def test_attention_mask_blocks_other_identities_and_allows_union_on_overlap():
    boxes = [[0.0, 0.0, 40.0, 40.0], [20.0, 20.0, 64.0, 64.0]]  # overlap on token (1, 1)
    tm = build_token_mask(boxes, 64, 64)
    m = tm.attention_mask(3)[0, 0]  # (R, 2*3)
    rows = tm.rows.tolist()
    overlap = rows.index(1 * 4 + 1)
    only_first = rows.index(0)
    assert m[overlap].all()
    assert m[only_first, :3].all() and not m[only_first, 3:].any()


def test_lambda_zero_reproduces_stock_flux_bit_for_bit(arcface):
    stock = tiny_transformer()
    inputs = transformer_inputs(stock, H, W)
    with torch.no_grad():
        ref = stock(**inputs).sample
    patched = tiny_transformer()
    adapter = tiny_adapter(patched, siglip_branch=True)
    adapter.attach(patched)
    cond = adapter.prepare(arcface, boxes=BOXES, height=H, width=W, lambda_arc=0.0, lambda_sig=0.0,
                           siglip=torch.randn(2, 4, 12))
    with adapter.conditioning(cond), torch.no_grad():
        assert torch.equal(patched(**inputs).sample, ref)
    with torch.no_grad():  # attached, no conditioning active
        assert torch.equal(patched(**inputs).sample, ref)
    cond = adapter.prepare(arcface, boxes=BOXES, height=H, width=W, lambda_arc=1.0)
    with adapter.conditioning(cond), torch.no_grad():
        assert not torch.equal(patched(**inputs).sample, ref)  # and a live branch does change it


@pytest.mark.parametrize("lam", [0.25, 1.0, 7.5])
def test_token_outside_every_box_is_unchanged(arcface, lam):
    tr = tiny_transformer()
    adapter = tiny_adapter(tr, siglip_branch=True)
    adapter.attach(tr)
    inputs = transformer_inputs(tr, H, W)
    base = _block0_output(tr, inputs)
    cond = adapter.prepare(arcface, boxes=BOXES, height=H, width=W, lambda_arc=lam, lambda_sig=lam / 2,
                           siglip=torch.randn(2, 4, 12))
    with adapter.conditioning(cond):
        out = _block0_output(tr, inputs)
    inside = _oracle_tokens(BOXES[0]) | _oracle_tokens(BOXES[1])
    outside = sorted(set(range(24)) - inside)
    assert torch.equal(out[:, outside], base[:, outside])
    assert (out[:, sorted(inside)] - base[:, sorted(inside)]).abs().amax(-1).min() > 0
    # every one of the 2 + 2 modules, called directly on arbitrary hidden states
    h = torch.randn(1, 24, adapter.config.hidden_size)
    for index in range(4):
        upd = adapter.inject(index, h, cond)
        assert torch.equal(upd[:, outside], h[:, outside])


def test_identity_i_changes_only_tokens_in_box_i(arcface):
    tr = tiny_transformer()
    adapter = tiny_adapter(tr)
    adapter.attach(tr)
    inputs = transformer_inputs(tr, H, W)
    cond_a = adapter.prepare(arcface, boxes=BOXES, height=H, width=W)
    changed = arcface.clone()
    changed[1] = torch.randn(512, generator=torch.Generator().manual_seed(11)) * 20
    cond_b = adapter.prepare(changed, boxes=BOXES, height=H, width=W)
    with adapter.conditioning(cond_a):
        out_a = _block0_output(tr, inputs)
    with adapter.conditioning(cond_b):
        out_b = _block0_output(tr, inputs)
    diff = (out_a - out_b).abs().amax(-1)[0]
    box1 = _oracle_tokens(BOXES[1])
    assert set(torch.nonzero(diff).flatten().tolist()) == box1
    h = torch.randn(1, 24, adapter.config.hidden_size)
    for index in range(4):
        d = (adapter.inject(index, h, cond_a) - adapter.inject(index, h, cond_b)).abs().amax(-1)[0]
        assert set(torch.nonzero(d).flatten().tolist()) == box1


def test_per_sample_boxes_and_rows_inside_only_another_samples_box(arcface):
    tr = tiny_transformer()
    adapter = tiny_adapter(tr)
    boxes = torch.tensor([[BOXES[0], BOXES[1]], [[0.0, 0.0, 16.0, 16.0], [80.0, 48.0, 96.0, 64.0]]])
    cond = adapter.prepare(torch.stack([arcface, arcface]), boxes=boxes, height=H, width=W)
    h = torch.randn(2, 24, adapter.config.hidden_size)
    out = adapter.inject(0, h, cond)
    for b in range(2):
        inside = _oracle_tokens(boxes[b, 0].tolist()) | _oracle_tokens(boxes[b, 1].tolist())
        outside = sorted(set(range(24)) - inside)
        assert torch.equal(out[b, outside], h[b, outside])
        assert (out[b, sorted(inside)] != h[b, sorted(inside)]).any(-1).all()


def test_context_tokens_after_the_target_are_never_updated(arcface):
    """Kontext layout: [target L, context L]; global injection (no boxes) updates every target token only."""
    tr = tiny_transformer()
    adapter = tiny_adapter(tr)
    cond = adapter.prepare(arcface, boxes=None, height=H, width=W)
    h = torch.randn(1, 48, adapter.config.hidden_size)
    out = adapter.inject(3, h, cond)
    assert torch.equal(out[:, 24:], h[:, 24:])
    assert (out[:, :24] != h[:, :24]).any(-1).all()


def test_zero_lambda_branch_is_not_computed(arcface, monkeypatch):
    tr = tiny_transformer()
    adapter = tiny_adapter(tr, siglip_branch=True)
    adapter.attach(tr)

    def boom(*a, **k):
        raise AssertionError("a lambda = 0 branch ran")

    for module in adapter.ipa_arc:
        monkeypatch.setattr(module, "forward", boom)
    monkeypatch.setattr(adapter.arcface_in_arc, "forward", boom)
    cond = adapter.prepare(arcface, boxes=BOXES, height=H, width=W, lambda_arc=0.0, lambda_sig=1.0,
                           siglip=torch.randn(2, 4, 12))
    assert set(cond.tokens) == {"sig"} and cond.tokens["sig"].shape == (1, 2 * (4 + 8), adapter.config.hidden_size)
    with adapter.conditioning(cond), torch.no_grad():
        tr(**transformer_inputs(tr, H, W))


def test_gradients_reach_adapter_through_gradient_checkpointing(arcface):
    tr = tiny_transformer()
    tr.enable_gradient_checkpointing()
    tr.requires_grad_(False)
    adapter = tiny_adapter(tr).train()
    adapter.attach(tr)
    inputs = transformer_inputs(tr, H, W)
    cond = adapter.prepare(arcface, boxes=BOXES, height=H, width=W)
    with adapter.conditioning(cond):
        loss = tr(**inputs).sample.square().mean()
        loss.backward()
    params = adapter.trainable_parameters()
    assert len(params) == len(list(adapter.parameters())) and params
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    assert adapter.ipa_arc[0].to_q.weight.grad.abs().sum() > 0
    assert adapter.arcface_in_arc[0].weight.grad.abs().sum() > 0


def test_sizes_come_from_the_transformer_config_and_mismatch_is_refused():
    tr = tiny_transformer()
    adapter = WithAnyoneAdapter.from_transformer_config(tr.config, siglip_branch=False)
    assert adapter.config.hidden_size == 32 and len(adapter.ipa_arc) == 4
    other = WithAnyoneAdapter(hidden_size=32, num_attention_heads=2, num_double_blocks=1, num_single_blocks=1,
                              siglip_branch=False)
    with pytest.raises(ConfigError, match="from_transformer_config"):
        other.attach(tr)


def test_bad_identity_inputs_are_named(arcface):
    tr = tiny_transformer()
    adapter = tiny_adapter(tr)
    with pytest.raises(BadInputError, match="3 boxes for 2 identities"):
        adapter.prepare(arcface, boxes=BOXES + [[0, 0, 16, 16]], height=H, width=W)
    with pytest.raises(ConfigError, match="no SigLIP branch"):
        adapter.prepare(arcface, boxes=BOXES, height=H, width=W, lambda_sig=0.5)
    with pytest.raises(BadInputError, match=r"\(N, 512\)"):
        adapter.prepare(torch.randn(2, 128), boxes=BOXES, height=H, width=W)
