"""Adapter weights: released key names (strict), training/Kontext renames, save -> load round trip."""
from __future__ import annotations

import copy

import pytest
import torch
from refmodel_tiny import tiny_adapter, tiny_transformer, transformer_inputs
from safetensors.torch import save_file

from multiid_bench.errors import BadInputError, MissingWeightsError
from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter
from multiid_bench.reference_model.weights import (
    detect_format,
    load_adapter_file,
    load_adapter_weights,
    save_adapter,
)

BOXES = [[0.0, 0.0, 32.0, 32.0], [32.0, 16.0, 64.0, 64.0]]


def spec_state_dict(d: int, heads: int, n_modules: int, *, arc=True, sig=True, dead=True, k=8, sig_dim=12,
                    ca_head_dim=8, mlp_ratio=4, prefix_style="merged") -> dict[str, torch.Tensor]:
    """Keys and shapes written out from spec §1.2-1.4 / §1.11 (not from the adapter's own state_dict)."""
    inner = heads * ca_head_dim
    g = torch.Generator().manual_seed(0)

    def t(*shape):
        return torch.randn(*shape, generator=g)

    def ca(prefix):
        out = {}
        for i in range(n_modules):
            p = f"{prefix}.{i}"
            out |= {f"{p}.norm1.weight": t(d), f"{p}.norm1.bias": t(d), f"{p}.norm2.weight": t(d),
                    f"{p}.norm2.bias": t(d), f"{p}.to_q.weight": t(inner, d), f"{p}.to_kv.weight": t(2 * inner, d),
                    f"{p}.to_out.weight": t(d, inner)}
        return out

    def mlp(prefix, in_dim, hidden, out_dim):
        return {f"{prefix}.0.weight": t(hidden, in_dim), f"{prefix}.0.bias": t(hidden), f"{prefix}.2.weight": t(hidden),
                f"{prefix}.2.bias": t(hidden), f"{prefix}.3.weight": t(out_dim, hidden), f"{prefix}.3.bias": t(out_dim)}

    arc_sfx, sig_sfx = ("_arc", "_sig") if prefix_style == "merged" else ("", "")
    sd: dict[str, torch.Tensor] = {}
    if arc:
        sd |= ca(f"ipa{arc_sfx}") | mlp(f"arcface_in{arc_sfx}", 512, mlp_ratio * d, k * d)
        if dead:  # the ArcFace run's unused siglip_in (768 -> 4D -> 8D)
            sd |= mlp(f"siglip_in{arc_sfx}", sig_dim, mlp_ratio * d, k * d)
    if sig:
        sd |= ca(f"ipa{sig_sfx}") | mlp(f"arcface_in{sig_sfx}", 512, mlp_ratio * d, k * d)
        sd |= mlp(f"siglip_in{sig_sfx}", sig_dim, d, d)
    return sd


def test_released_flux1_dev_key_set_and_sizes_match_the_spec():
    """At real size on the meta device: 57 modules per branch, ~18.9 M params each, 512->12288->24576 MLP."""
    with torch.device("meta"):
        adapter = WithAnyoneAdapter()
    own = {k: tuple(v.shape) for k, v in adapter.state_dict().items()}  # 2.8 B random tensors would be too slow
    names = {f"ipa_{b}.{i}.{m}.weight" for b in ("arc", "sig") for i in range(57)
             for m in ("norm1", "norm2", "to_q", "to_kv", "to_out")}
    assert names <= set(own)
    assert len([k for k in own if k.startswith("ipa_arc.")]) == 57 * 7
    assert own["ipa_arc.0.to_q.weight"] == (1536, 3072) and own["ipa_arc.56.to_kv.weight"] == (3072, 3072)
    assert own["arcface_in_arc.0.weight"] == (12288, 512) and own["arcface_in_arc.3.weight"] == (24576, 12288)
    assert own["siglip_in_sig.0.weight"] == (3072, 768) and own["siglip_in_sig.3.weight"] == (3072, 3072)
    per_module = sum(p.numel() for p in adapter.ipa_arc[0].parameters())
    assert abs(per_module - 18.9e6) < 0.05e6
    assert abs(sum(p.numel() for p in adapter.arcface_in_arc.parameters()) - 308e6) < 1e6


def test_spec_key_names_load_strict_and_dead_keys_are_reported(tmp_path):
    tr = tiny_transformer()
    path = tmp_path / "withanyone.safetensors"
    sd = spec_state_dict(32, 2, 4)
    save_file(sd, str(path))
    adapter = load_adapter_file(path, tr.config, ca_head_dim=8, num_siglip_tokens=4, siglip_dim=12)
    assert adapter.config.siglip_branch
    for key, value in adapter.state_dict().items():
        assert torch.equal(value, sd[key]), key
    report = load_adapter_weights(adapter, path)
    assert report.format == "merged"
    assert report.dead_keys and all(k.startswith("siglip_in_arc.") for k in report.dead_keys)
    assert report.loaded == len(sd) - len(report.dead_keys)


def test_merged_file_into_arcface_only_adapter(tmp_path):
    tr = tiny_transformer()
    path = tmp_path / "withanyone.safetensors"
    save_file(spec_state_dict(32, 2, 4), str(path))
    arc_only = tiny_adapter(tr, siglip_branch=False)
    with pytest.raises(BadInputError, match="skip_siglip_branch"):
        load_adapter_weights(arc_only, path)
    report = load_adapter_weights(arc_only, path, skip_siglip_branch=True)
    assert report.skipped_branch_keys and all("_sig." in k for k in report.skipped_branch_keys)
    assert not load_adapter_file(path, tr.config, siglip_branch=False, ca_head_dim=8).config.siglip_branch


@pytest.mark.parametrize(("kwargs", "fmt"), [({"sig": False}, "training-arc"), ({"arc": False}, "training-sig")])
def test_training_checkpoints_are_renamed(kwargs, fmt):
    tr = tiny_transformer()
    sd = spec_state_dict(32, 2, 4, prefix_style="training", **kwargs)
    assert detect_format(sd) == fmt
    if fmt == "training-arc":  # a whole ArcFace-only adapter: strict
        adapter = tiny_adapter(tr, siglip_branch=False)
        report = load_adapter_weights(adapter, sd)
        assert torch.equal(adapter.ipa_arc[2].to_kv.weight, sd["ipa.2.to_kv.weight"])
        assert report.dead_keys and all(k.startswith("siglip_in_arc.") for k in report.dead_keys)
    else:  # one branch of a two-branch adapter: every file key lands, the ArcFace branch stays as it was
        adapter = tiny_adapter(tr, siglip_branch=True)
        report = load_adapter_weights(adapter, sd, strict=False)
        assert report.format == "training-sig" and report.loaded == len(sd)
        assert torch.equal(adapter.siglip_in_sig[3].weight, sd["siglip_in.3.weight"])
        assert torch.equal(adapter.ipa_sig[1].to_q.weight, sd["ipa.1.to_q.weight"])


def test_kontext_e_key_set_loads_strict_into_arcface_adapter(tmp_path):
    tr = tiny_transformer()
    sd = spec_state_dict(32, 2, 4, sig=False, prefix_style="training")  # ipa.*, arcface_in.*, unused siglip_in.*
    path = tmp_path / "ke.safetensors"
    save_file(sd, str(path))
    adapter = load_adapter_file(path, tr.config, fmt="kontext", ca_head_dim=8)
    assert not adapter.config.siglip_branch
    assert torch.equal(adapter.arcface_in_arc[3].bias, sd["arcface_in.3.bias"])


def test_missing_and_misshaped_keys_are_refused_with_names(tmp_path):
    tr = tiny_transformer()
    adapter = tiny_adapter(tr, siglip_branch=True)
    sd = spec_state_dict(32, 2, 4)
    del sd["ipa_arc.3.to_out.weight"]
    with pytest.raises(BadInputError, match=r"1 missing \['ipa_arc.3.to_out.weight'\]"):
        load_adapter_weights(adapter, sd)
    sd = spec_state_dict(32, 2, 4)
    sd["ipa_sig.0.to_q.weight"] = torch.zeros(5, 32)
    with pytest.raises(BadInputError, match="ipa_sig.0.to_q.weight: file \\(5, 32\\)"):
        load_adapter_weights(adapter, sd)
    with pytest.raises(MissingWeightsError, match="mbench weights download withanyone-flux1-dev"):
        load_adapter_weights(adapter, tmp_path / "absent.safetensors")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 7)
    with pytest.raises(BadInputError, match="not a readable safetensors"):
        load_adapter_weights(adapter, tmp_path / "broken.safetensors")


@pytest.mark.parametrize("fmt", ["merged", "training-arc"])
def test_save_then_load_gives_identical_outputs(tmp_path, arcface, fmt):
    tr = tiny_transformer()
    inputs = transformer_inputs(tr, 64, 64)
    adapter = tiny_adapter(tr, siglip_branch=(fmt == "merged"))
    adapter.attach(tr)
    cond = adapter.prepare(arcface, boxes=BOXES, height=64, width=64)
    with adapter.conditioning(cond), torch.no_grad():
        before = tr(**inputs).sample
    path = save_adapter(adapter, tmp_path / "ipa.safetensors", fmt=fmt)

    tr2 = copy.deepcopy(tr)
    adapter.detach()
    loaded = load_adapter_file(path) if fmt == "merged" else load_adapter_file(path, tr2.config, ca_head_dim=8)
    loaded.attach(tr2)
    cond2 = loaded.prepare(arcface, boxes=BOXES, height=64, width=64)
    with loaded.conditioning(cond2), torch.no_grad():
        after = tr2(**inputs).sample
    assert torch.equal(before, after)
