"""The training loop on a tiny CPU config over synthetic MultiID-2M records: learning, exact resume,
two gloo processes = one process, bad records counted into the checkpoint, the phase configs and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest_train import face_record, one_thread, tiny_config, write_synthetic_data  # noqa: F401 (fixture)
from safetensors.torch import load_file

from multiid_bench.errors import ConfigError
from multiid_bench.reference_model.bank import build_reference_bank
from multiid_bench.reference_model.data import write_shard
from multiid_bench.reference_model.batches import collate
from multiid_bench.reference_model.launch import launch_cpu_processes
from multiid_bench.reference_model.train import (
    Dist,
    compute_step,
    find_checkpoint,
    lr_at,
    train,
)
from multiid_bench.reference_model.train_config import OptimConfig, TrainConfig, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "reference_model" / "configs"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-data")
    d = write_synthetic_data(root, n_records=4)
    d["bank"] = build_reference_bank(ref_dir=d["refs"]).save(root / "bank.safetensors")
    return d

pytestmark = pytest.mark.usefixtures("one_thread")


def _adapter(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_lr_at_by_hand():
    const = OptimConfig(lr=1e-4)
    assert [lr_at(s, const, 100) for s in (0, 50, 99)] == [1e-4] * 3
    warm = OptimConfig(lr=1e-4, warmup_steps=4, schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(0, warm, 104) == pytest.approx(2.5e-5) and lr_at(3, warm, 104) == pytest.approx(1e-4)
    assert lr_at(4, warm, 104) == pytest.approx(1e-4)  # cosine starts at the peak
    assert lr_at(54, warm, 104) == pytest.approx(1e-4 * (0.1 + 0.9 * 0.5))  # half way
    assert lr_at(104, warm, 104) == pytest.approx(1e-5)


def test_phase_configs_carry_the_paper_numbers():
    cfgs = [load_config(CONFIGS / f"phase{i}.toml") for i in range(1, 5)]
    assert [c.run.max_steps for c in cfgs] == [20_000, 40_000, 30_000, 10_000]  # Sec. 5.2 / App. F.1
    assert [c.optim.lr for c in cfgs] == [1e-4, 1e-4, 1e-4, 1e-5]
    assert all(c.optim.weight_decay == 0.01 and c.run.global_batch == 32 for c in cfgs)
    assert all(c.loss.lambda_id == 0.1 and c.loss.lambda_cl == 0.1 for c in cfgs)
    assert cfgs[0].data.fixed_prompt == "{people}" and cfgs[1].data.fixed_prompt is None
    assert [c.data.paired_ratio for c in cfgs[:3]] == [0.0, 0.0, 0.5]
    assert cfgs[1].model.init_adapter.startswith(cfgs[0].run.output_dir)
    assert TrainConfig.from_dict(cfgs[2].to_dict()) == cfgs[2]  # what a checkpoint stores reloads as is


def test_config_refuses_unknown_keys_and_bad_values(tmp_path):
    (tmp_path / "bad.toml").write_text("[loss]\nlamda_id = 0.1\n")
    with pytest.raises(ConfigError, match="lamda_id"):
        load_config(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="SigLIP"):
        TrainConfig.from_dict({"model": {"branch": "sig"}, "loss": {"bank_negatives": 0, "lambda_sig": 0}})
    with pytest.raises(ConfigError, match="build-bank"):
        TrainConfig.from_dict({"loss": {"bank_negatives": 10}, "data": {"paths": ["x"]}})


def _diffusion_loss(cfg: TrainConfig, adapter_path: Path | None) -> float:
    """L_diff of the first global batch (fixed records, noise and t) under a given adapter."""
    from accelerate import Accelerator

    from multiid_bench.reference_model.batches import SampleBuilder, TrainStream
    from multiid_bench.reference_model.data import open_source
    from multiid_bench.reference_model.train_components import TrainModule, build_components

    cfg = cfg.replace(model={"init_adapter": str(adapter_path) if adapter_path else None},
                      loss={"lambda_id": 0.0, "lambda_cl": 0.0, "bank_negatives": 0})
    torch.manual_seed(cfg.run.seed)
    comp = build_components(cfg, Accelerator(cpu=True).device)
    stream = TrainStream([open_source(p) for p in cfg.data.paths], None, SampleBuilder(cfg.data, None, None),
                         seed=cfg.run.seed)
    batch = collate([stream[p] for p in range(4)])
    with torch.no_grad():
        out = compute_step(comp, TrainModule(comp.adapter, comp.transformer), batch, cfg, 0, Dist(1, 0))
    comp.adapter.set_conditioning(None)
    return out.logs["diff"]


def test_thirty_phase1_steps_lower_the_diffusion_loss(tmp_path, synth):
    """The phase-1 recipe (fixed prompt, λ_ID = λ_CL = 0.1, extended negatives) on 4 records, tiny model."""
    base = load_config(CONFIGS / "phase1.toml")
    tiny = tiny_config(tmp_path, synth["shards"], synth["bank"], run={"max_steps": 30, "checkpoint_every": 30})
    cfg = base.replace(run=vars(tiny.run), model=vars(tiny.model), loss={"bank_negatives": 16},
                       optim={"lr": 1e-3}, data={k: getattr(tiny.data, k) for k in
                                                 ("paths", "bank", "resolution", "max_faces",
                                                  "detector")})  # the synthetic records store landmarks
    assert cfg.data.fixed_prompt == "{people}" and cfg.loss.lambda_id == 0.1
    before = _diffusion_loss(cfg, None)
    result = train(cfg)
    assert result.step == 30 and len(result.history) == 30
    assert all({"diff", "id", "cl"} <= set(row) for row in result.history)
    after = _diffusion_loss(cfg, result.output_dir / "final" / "adapter.safetensors")
    assert after < 0.95 * before, (before, after)  # measured: 1.660 -> 1.471


def test_resume_continues_bit_exactly(tmp_path, synth):
    straight = train(tiny_config(tmp_path / "a", synth["shards"], synth["bank"]))
    cfg = tiny_config(tmp_path / "b", synth["shards"], synth["bank"])
    first = train(cfg, stop_after=3)  # "killed" right after the step-3 checkpoint
    ckpt = find_checkpoint(cfg.run.output_dir)
    assert first.step == 3 and ckpt.name == "step-3"
    state = json.loads((ckpt / "state.json").read_text())
    assert state["step"] == 3 and TrainConfig.from_dict(state["config"]) == cfg
    assert {p.name for p in ckpt.iterdir()} == {"adapter.safetensors", "optimizer.pt", "scheduler.pt",
                                               "rng-rank0.pt", "state.json"}
    second = train(cfg)
    assert second.resumed_from == ckpt and [r["step"] for r in second.history] == [3, 4, 5]
    assert second.history == straight.history[3:]  # same floats, not just close
    a = _adapter(straight.output_dir / "final" / "adapter.safetensors")
    b = _adapter(second.output_dir / "final" / "adapter.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], _adapter(ckpt / "adapter.safetensors")[k]) for k in a)  # it did train


def test_two_gloo_processes_match_one_process(tmp_path, synth):
    one = tiny_config(tmp_path / "one", synth["shards"], synth["bank"], run={"max_steps": 3})
    two = one.replace(run={"output_dir": str(tmp_path / "two" / "run")})
    r1 = train(one)
    launch_cpu_processes(two, 2, start_method="fork")
    rows = [json.loads(x) for x in (Path(two.run.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]  # rank 0 logs once per step
    for a, b in zip(r1.history, rows):
        for key in ("diff", "id", "cl", "loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key
    a = _adapter(r1.output_dir / "final" / "adapter.safetensors")
    b = _adapter(Path(two.run.output_dir) / "final" / "adapter.safetensors")
    for k in a:  # same update: the contrastive gradient crossed the all-gather intact
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5)  # Adam: lr-sized if a sign flipped
    state = json.loads((Path(two.run.output_dir) / "checkpoints" / "step-3" / "state.json").read_text())
    assert state["world_size"] == 2


def test_bad_records_are_skipped_and_counted_in_the_checkpoint(tmp_path, synth):
    import numpy as np

    rng = np.random.default_rng(7)
    corrupt = face_record(rng, "corrupt", ["alice"], {})
    corrupt = (corrupt[0], b"\xff\xd8\xff garbage", corrupt[2], corrupt[3])
    mismatch = face_record(rng, "mismatch", ["bob", "carol"], {})
    mismatch[3]["embeddings"] = mismatch[3]["embeddings"][:1]
    noface = face_record(rng, "noface", ["dave"], {})
    del noface[3]["landmarks"]
    data = tmp_path / "data"
    write_shard(data / "bad.tar", [corrupt, mismatch, noface])
    write_shard(data / "good.tar", synth["records"])
    cfg = tiny_config(tmp_path, data, synth["bank"], run={"max_steps": 4, "checkpoint_every": 4})
    result = train(cfg)
    assert result.step == 4
    counts = json.loads((find_checkpoint(cfg.run.output_dir) / "state.json").read_text())["counts"]
    assert counts == result.counts
    assert counts["decode_error"] >= 1 and counts["boxes_embeddings_mismatch"] >= 1
    assert counts["no_face_for_id_loss"] >= 1


def test_cli_trains_from_a_config_and_builds_the_bank(tmp_path, synth):
    from click.testing import CliRunner

    from multiid_bench.cli.main import cli

    runner = CliRunner()
    bank = tmp_path / "bank.safetensors"
    res = runner.invoke(cli, ["train", "build-bank", "--ref-dir", str(synth["refs"]), "--out", str(bank)])
    assert res.exit_code == 0, res.output
    assert "6 identities" in res.output and bank.is_file()
    cfg = tiny_config(tmp_path, synth["shards"], bank, run={"max_steps": 2, "checkpoint_every": 2})
    raw = cfg.to_dict()
    toml = "\n".join(f"[{sec}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in vals.items() if v is not None)
                     for sec, vals in raw.items())
    (tmp_path / "tiny.toml").write_text(toml)
    res = runner.invoke(cli, ["train", "--config", str(tmp_path / "tiny.toml"), "--max-steps", "1"])
    assert res.exit_code == 0, res.output
    assert (Path(cfg.run.output_dir) / "checkpoints" / "step-1" / "state.json").is_file()
    res = runner.invoke(cli, ["train", "--config", str(tmp_path / "missing.toml")])
    assert isinstance(res.exception, ConfigError) and "not found" in str(res.exception)
    from multiid_bench.cli._errors import run_with_error_mapping

    assert run_with_error_mapping(cli, ["train", "--config", str(tmp_path / "missing.toml")], debug=False) == 2


def test_diffusers_folder_path_with_gradient_checkpointing(tmp_path, synth):
    """The production loader (FluxPipeline folder: transformer, VAE, CLIP + T5 and tokenizers; ArcFace from a
    safetensors file) trains; gradient checkpointing re-runs the blocks with the identity hooks active and
    gives the same losses and update as without it."""
    from diffusers import FluxPipeline
    from conftest_train import TINY_ARCFACE
    from refmodel_tiny import tiny_components
    from safetensors.torch import save_file

    from multiid_bench.reference_model.arcface_torch import IResNetConfig, build_iresnet

    FluxPipeline(**tiny_components().as_kwargs()).save_pretrained(tmp_path / "flux")
    torch.manual_seed(2)
    save_file(build_iresnet(IResNetConfig(**TINY_ARCFACE)).state_dict(), str(tmp_path / "arc.safetensors"))
    results = []
    for ckpt in (False, True):
        cfg = tiny_config(tmp_path / str(ckpt), synth["shards"], synth["bank"], run={"max_steps": 2},
                          model={"factory": None, "factory_path": None, "base_model": str(tmp_path / "flux"),
                                 "loss_arcface": str(tmp_path / "arc.safetensors"), "gradient_checkpointing": ckpt},
                          data={"fixed_prompt": None})
        results.append(train(cfg))
    plain, checkpointed = results
    for a, b in zip(plain.history, checkpointed.history):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6)
    a = _adapter(plain.output_dir / "final" / "adapter.safetensors")
    b = _adapter(checkpointed.output_dir / "final" / "adapter.safetensors")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6)
