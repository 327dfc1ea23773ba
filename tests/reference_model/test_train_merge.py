"""``mbench train merge``: ArcFace run + SigLIP run -> one adapter (spec §4.6), from our files and released ones."""
from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from refmodel_tiny import tiny_adapter, tiny_transformer
from safetensors.torch import load_file

from multiid_bench.errors import BadInputError
from multiid_bench.reference_model.merge import merge_adapters
from multiid_bench.reference_model.weights import load_adapter_file, save_adapter


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("merge")
    transformer = tiny_transformer()
    arc = tiny_adapter(transformer, siglip_branch=False, seed=1)  # an ArcFace run builds no SigLIP branch
    sig = tiny_adapter(transformer, siglip_branch=True, seed=2)  # a SigLIP run: both, only *_sig trained
    files = {"arc": save_adapter(arc, root / "arc.safetensors"), "sig": save_adapter(sig, root / "sig.safetensors"),
             "arc_released": save_adapter(arc, root / "ipa_arc.safetensors", fmt="training-arc"),
             "sig_released": save_adapter(sig, root / "ipa_sig.safetensors", fmt="training-sig")}
    return root, arc.state_dict(), sig.state_dict(), files


def _expected(arc_sd, sig_sd):
    return {**{k: v for k, v in arc_sd.items() if k.endswith("_arc") or "_arc." in k},
            **{k: v for k, v in sig_sd.items() if "_sig." in k}}


@pytest.mark.parametrize("layout", ["ours", "released"])
def test_merge_takes_arc_from_the_arcface_run_and_sig_from_the_siglip_run(runs, layout):
    root, arc_sd, sig_sd, files = runs
    suffix = "" if layout == "ours" else "_released"
    report = merge_adapters(files["arc" + suffix], files["sig" + suffix], root / f"merged-{layout}.safetensors")
    got = load_file(str(report.out))
    want = _expected(arc_sd, sig_sd)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert report.arc_tensors + report.sig_tensors == len(want)
    if layout == "ours":  # the SigLIP run's frozen ArcFace branch is left out
        assert {k.split(".")[0] for k in report.dropped} == {"ipa_arc", "arcface_in_arc"}
    adapter = load_adapter_file(report.out)  # loads strictly as an inference adapter with both branches
    assert adapter.config.siglip_branch and torch.equal(adapter.ipa_sig[0].to_q.weight, sig_sd["ipa_sig.0.to_q.weight"])
    assert torch.equal(adapter.ipa_arc[0].to_q.weight, arc_sd["ipa_arc.0.to_q.weight"])


def test_swapped_inputs_are_refused(runs):
    root, _, _, files = runs
    with pytest.raises(BadInputError, match="swap --arc and --sig"):
        merge_adapters(files["sig_released"], files["arc_released"], root / "bad.safetensors")


def test_cli_merge(runs):
    from multiid_bench.cli.train import train

    root, arc_sd, sig_sd, files = runs
    out = root / "cli.safetensors"
    res = CliRunner().invoke(train, ["merge", "--arc", str(files["arc"]), "--sig", str(files["sig"]), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "ArcFace" in res.output and load_file(str(out)).keys() == _expected(arc_sd, sig_sd).keys()
