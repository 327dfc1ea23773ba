"""FSDP2 (the shipped accelerate config, reference_model/configs/accelerate/fsdp.yaml) in two gloo CPU processes
gives the one-process losses and final adapter, and resumes from its own (full-state) checkpoint."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest_train import one_thread, tiny_config, write_synthetic_data  # noqa: F401 (fixture)
from safetensors.torch import load_file

from multiid_bench.reference_model.bank import build_reference_bank
from multiid_bench.reference_model.sharding import accelerate_env
from multiid_bench.reference_model.launch import launch_cpu_processes
from multiid_bench.reference_model.train import train

FSDP_YAML = Path(__file__).resolve().parents[2] / "reference_model" / "configs" / "accelerate" / "fsdp.yaml"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-data-fsdp")
    d = write_synthetic_data(root, n_records=4)
    d["bank"] = build_reference_bank(ref_dir=d["refs"]).save(root / "bank.safetensors")
    return d


def test_fsdp_config_maps_to_the_accelerate_environment():
    env = accelerate_env(FSDP_YAML)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    assert env["FSDP_AUTO_WRAP_POLICY"] == "NO_WRAP" and env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT"


def test_two_fsdp_gloo_processes_match_one_process(tmp_path, synth):
    one = tiny_config(tmp_path / "one", synth["shards"], synth["bank"], run={"max_steps": 2, "checkpoint_every": 1})
    two = one.replace(run={"output_dir": str(tmp_path / "two" / "run")})
    r1 = train(one)
    launch_cpu_processes(two, 2, start_method="fork", env=accelerate_env(FSDP_YAML))
    out = Path(two.run.output_dir)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    for a, b in zip(r1.history, rows):
        for key in ("diff", "id", "cl", "loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key
    state = json.loads((out / "checkpoints" / "step-2" / "state.json").read_text())
    assert state["world_size"] == 2 and state["sharded"] is True
    a = load_file(str(r1.output_dir / "final" / "adapter.safetensors"))
    b = load_file(str(out / "final" / "adapter.safetensors"))
    assert a.keys() == b.keys()
    for k in a:  # full tensors gathered from the shards, and the same update as one process
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    optim = torch.load(out / "checkpoints" / "step-2" / "optimizer.pt", weights_only=True)
    assert any(k.startswith("adapter.ipa_arc.0.") for k in optim["state"])  # full state, by parameter name


def test_fsdp_run_resumes_from_its_full_state_checkpoint(tmp_path, synth):
    cfg = tiny_config(tmp_path / "a", synth["shards"], synth["bank"], run={"max_steps": 2, "checkpoint_every": 1})
    straight = train(cfg)
    resumed = cfg.replace(run={"output_dir": str(tmp_path / "b" / "run")})
    env = accelerate_env(FSDP_YAML)
    launch_cpu_processes(resumed, 2, start_method="fork", env=env, stop_after=1)  # "killed" after step 1
    out = Path(resumed.run.output_dir)
    assert (out / "checkpoints" / "step-1" / "state.json").is_file() and not (out / "final").exists()
    launch_cpu_processes(resumed, 2, start_method="fork", env=env)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1]
    assert rows[1]["loss"] == pytest.approx(straight.history[1]["loss"], rel=1e-5)
    a = load_file(str(straight.output_dir / "final" / "adapter.safetensors"))
    b = load_file(str(out / "final" / "adapter.safetensors"))
    for k in a:  # optimiser moments restored from the by-name state: the same second update
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)
    with pytest.raises(Exception, match="written by a sharded"):  # a DDP/1-process run refuses it
        train(resumed.replace(run={"max_steps": 3}))
