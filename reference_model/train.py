"""WithAnyone trainer: one script for one CPU process, one GPU or many (accelerate / DDP).

Read top to bottom: pure helpers (``lr_at``, distributed reductions), the loss of one step
(``compute_step``), checkpoints, then the loop (``train``). The config lives in ``train_config.py``.

Loss of a step (paper eq. 6): ``L = L_diff + λ_ID·L_ID + λ_CL·L_CL`` with every term a *global* mean:
* ``L_diff``: mean over samples of the per-sample flow-matching MSE;
* ``L_ID``: sum of gated per-face ``1 − cos`` over valid faces / number of valid faces (all ranks);
* ``L_CL``: the queries (generated-face embeddings) are all-gathered **with gradients** (an autograd
  all-gather; the released ``--gather`` detached them, spec §6.2.3), so every rank computes the same InfoNCE
  over the global batch. Its backward sums the gradient of each rank's copy (×W) and DDP averages (÷W), so
  the adapter receives exactly ∂L/∂θ; the local terms are scaled by W for the same reason.
Hence W processes with batch b give the loss and update of 1 process with batch W·b (up to float summation
order), which ``tests/reference_model/test_train.py`` checks with two gloo processes.
"""
from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multiid_bench.errors import ConfigError, MissingDataError

from .batches import StepSampler, TrainStream, collate, sample_noise, sample_seed
from .losses import (
    detect_prediction_landmarks,
    flow_matching_loss,
    gt_aligned_id_loss,
    identity_gate,
    info_nce_extended,
    make_flow_sample,
    pack_latents,
    predict_clean,
    sample_sigmas,
    to_convention,
    unpack_latents,
)
from .train_components import (
    Components,
    TrainModule,
    build_components,
    latent_image_ids,
    reference_siglip,
    sample_builder,
)
from .sharding import (
    full_adapter_state,
    is_sharded,
    load_sharded,
    save_sharded_optimizer,
    shard_module,
    wants_sharding,
)
from .train_config import OptimConfig, TrainConfig

__all__ = ["Dist", "StepOutput", "TrainResult", "compute_step", "find_checkpoint", "lr_at",
           "train"]

logger = logging.getLogger(__name__)
CHECKPOINT_PREFIX = "step-"


# ---------------------------------------------------------------------------------------------- helpers
def lr_at(step: int, optim: OptimConfig, max_steps: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up, then constant or cosine."""
    if optim.warmup_steps and step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return optim.lr
    progress = min(1.0, (step - optim.warmup_steps) / max(1, max_steps - optim.warmup_steps))
    return optim.lr * (optim.min_lr_ratio + (1 - optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class Dist:
    """The few collectives the loss needs; no-ops in a single process."""

    def __init__(self, world_size: int, rank: int) -> None:
        self.world_size, self.rank = world_size, rank

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        t = t.detach().clone()
        if self.world_size > 1:
            torch.distributed.all_reduce(t)
        return t

    def gather(self, t: torch.Tensor, *, grad: bool = False) -> torch.Tensor:
        """Concatenate every rank's ``t`` along dim 0 in rank order; ``grad=True`` keeps the autograd graph."""
        if self.world_size == 1:
            return t
        if grad:  # autograd all-gather: backward sums each rank's gradient for this rank's slice
            import torch.distributed._functional_collectives as fc

            gather = getattr(fc, "all_gather_single_autograd", None) or fc.all_gather_tensor_autograd
            out = gather(t.contiguous(), 0, torch.distributed.group.WORLD)
            return fc.wait_tensor(out) if hasattr(fc, "wait_tensor") else out
        parts = [torch.empty_like(t) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, t.contiguous())
        return torch.cat(parts, dim=0)


@dataclass
class StepOutput:
    loss: torch.Tensor  # what to call backward on (local scaling, see module docstring)
    logs: dict[str, float]  # global values, identical on every rank


# ------------------------------------------------------------------------------------------ one step
def compute_step(comp: Components, module: torch.nn.Module, batch: dict[str, Any], cfg: TrainConfig, step: int,
                 dist: Dist, bank: Any = None, pred_detector: Any = None) -> StepOutput:
    """Forward one batch and return the loss to back-propagate plus its global values.

    ``pred_detector`` (``loss.id_alignment = "prediction"``): image -> (boxes, landmarks) run on the decoded
    prediction."""
    lc, res = cfg.loss, cfg.data.resolution
    dev = next(p for p in comp.adapter.parameters()).device
    px = batch["pixels"].to(dev)
    b = px.shape[0]
    vae = comp.vae
    vdtype = next(vae.parameters()).dtype
    scale, shift = vae.config.scaling_factor, (vae.config.shift_factor or 0.0)
    with torch.no_grad():
        lat = vae.encode(px.to(vdtype)).latent_dist.mode()
        x1 = pack_latents(((lat - shift) * scale).float())
        prompt_embeds, pooled, text_ids = comp.encode_prompt(list(batch["caption"]))
    noise = sample_noise(batch["position"], tuple(x1.shape[1:]), cfg.run.seed).to(dev)
    sigma = torch.cat([sample_sigmas(1, sampling=lc.t_sampling, seq_len=x1.shape[1],
                                     generator=torch.Generator().manual_seed(sample_seed(cfg.run.seed, p, "t")))
                       for p in batch["position"].tolist()]).to(dev)
    fs = make_flow_sample(x1, noise, sigma, convention=lc.convention)
    tdtype = next(comp.transformer.parameters()).dtype
    img_ids = latent_image_ids(res, res, vae_scale_factor=comp.vae_scale_factor, device=dev, dtype=tdtype)
    sig_kw: dict[str, Any] = {}
    if cfg.model.branch == "sig":  # the SigLIP branch alone, as the released separate run (λ_arc = 0)
        sig_kw = {"siglip": reference_siglip(comp, batch).to(dev), "lambda_sig": lc.lambda_sig}
    v_flux = module(fs.x_t.to(tdtype), sigma, prompt_embeds.to(dev, tdtype), pooled.to(dev, tdtype),
                    text_ids.to(dev, tdtype), img_ids, batch["cond_emb"].to(dev), batch["boxes"].to(dev), height=res,
                    width=res, lambda_arc=0.0 if sig_kw else lc.lambda_arc, guidance=lc.guidance, **sig_kw).float()
    v = to_convention(v_flux, lc.convention)
    l_diff = flow_matching_loss(v, fs.target)
    n_global = b * dist.world_size
    loss = l_diff.mean()
    logs = {"diff": float(dist.sum(l_diff.sum())) / n_global}
    total = logs["diff"]
    if lc.lambda_id > 0 or lc.lambda_cl > 0:
        x_hat = predict_clean(fs.x_t, v, fs.t, convention=lc.convention)
        lat_hat = unpack_latents(x_hat, res, res, vae_scale_factor=comp.vae_scale_factor) / scale + shift
        pred = vae.decode(lat_hat.to(vdtype)).sample.float()
        valid = (batch["lm_valid"] & batch["face_valid"]).to(dev)
        pred_lm = None
        if lc.id_alignment == "prediction":
            if pred_detector is None:
                raise ConfigError("loss.id_alignment = 'prediction' needs a landmark detector (data.detector)")
            pred_lm, pred_ok = detect_prediction_landmarks(pred_detector, pred, batch["boxes"].to(dev),
                                                           min_iou=cfg.data.min_iou)
            valid = valid & pred_ok
        with torch.autocast(dev.type, enabled=False):  # ArcFace and InfoNCE in fp32 (released: bf16, §6.2.11)
            out = gt_aligned_id_loss(comp.arcface, pred.float(), px, batch["landmarks"].to(dev), valid,
                                     transform=lc.align_transform, pred_landmarks=pred_lm)
        gate = identity_gate(sigma, lc.id_gate_sigma, mode=lc.id_gate_mode)  # (B,)
        face_gate = gate[:, None].expand_as(out.loss)
        n_valid = float(dist.sum(valid.sum().float()).clamp_min(1.0))
        id_sum = (out.loss * face_gate * valid).sum()
        logs["id"] = float(dist.sum(id_sum)) / n_valid
        logs["valid_faces"] = n_valid
        if lc.lambda_id > 0:
            loss = loss + lc.lambda_id * dist.world_size * id_sum / n_valid
            total += lc.lambda_id * logs["id"]
        if lc.lambda_cl > 0:
            d = out.query.shape[-1]
            q = dist.gather(out.query.reshape(-1, d), grad=True)
            pos = dist.gather(batch["target_emb"].to(dev).reshape(-1, batch["target_emb"].shape[-1]))
            ident = dist.gather(batch["identity"].to(dev).reshape(-1))
            bank_id = dist.gather(batch["bank_id"].to(dev).reshape(-1))
            sel = dist.gather(valid.reshape(-1))
            g = dist.gather(face_gate.reshape(-1))[sel]
            negs = None
            if lc.bank_negatives > 0 and bank is not None:
                gen = torch.Generator().manual_seed(sample_seed(cfg.run.seed, step, "bank"))
                negs = bank.sample_negatives(bank_id[sel], lc.bank_negatives, gen).to(dev)
            if int(sel.sum()) > 0:
                with torch.autocast(dev.type, enabled=False):
                    l_cl = info_nce_extended(q[sel], pos[sel], ident[sel], bank_negatives=negs, tau=lc.tau,
                                             in_batch=lc.in_batch_negatives)
                loss_cl = (l_cl * g).mean()
                loss = loss + lc.lambda_cl * loss_cl
                logs["cl"] = float(loss_cl.detach())
                total += lc.lambda_cl * logs["cl"]
    logs["loss"] = total
    return StepOutput(loss, logs)


# ----------------------------------------------------------------------------------------- checkpoints
def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
             "numpy_meta": [int(np_state[2]), int(np_state[3]), float(np_state[4])],
             "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    pos, has_gauss, cached = state["numpy_meta"]
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def find_checkpoint(output_dir: str | Path) -> Path | None:
    """Latest complete checkpoint folder (one with ``state.json``) under ``output_dir/checkpoints``."""
    root = Path(output_dir) / "checkpoints"
    done = sorted((p for p in root.glob(f"{CHECKPOINT_PREFIX}*") if (p / "state.json").is_file()),
                  key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))
    return done[-1] if done else None


def _merged_counts(counts: Counter, acc: Any) -> dict[str, int]:
    if acc.num_processes == 1:
        return dict(counts)
    parts: list[Any] = [None] * acc.num_processes
    torch.distributed.all_gather_object(parts, dict(counts))
    total: Counter = Counter()
    for p in parts:
        total.update(p)
    return dict(total)


def save_checkpoint(acc: Any, module: Any, opt: Any, sched: Any, step: int, cfg: TrainConfig, counts: Counter,
                    extra: dict[str, Any]) -> Path:
    """Write ``checkpoints/step-<N>`` atomically (tmp folder + rename): adapter, optimiser, scheduler, RNG per
    rank, and ``state.json`` with step, full config and the skip/event counts summed over ranks."""
    from .weights import save_adapter

    root = Path(cfg.run.output_dir) / "checkpoints"
    final = root / f"{CHECKPOINT_PREFIX}{step}"
    tmp = root / f".tmp-{CHECKPOINT_PREFIX}{step}"
    merged = _merged_counts(counts, acc)
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    torch.save(_rng_state(), tmp / f"rng-rank{acc.process_index}.pt")
    full = full_adapter_state(module)  # FSDP: gather full tensors (collective); None under DDP
    opt_state = save_sharded_optimizer(module, opt) if full is not None else None
    if acc.is_main_process:
        save_adapter(acc.unwrap_model(module).adapter, tmp / "adapter.safetensors", state_dict=full)
        torch.save(opt.state_dict() if opt_state is None else opt_state, tmp / "optimizer.pt")
        torch.save(sched.state_dict(), tmp / "scheduler.pt")
        state = {"step": step, "config": cfg.to_dict(), "counts": merged, "world_size": acc.num_processes,
                 "sharded": full is not None,
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra}
        (tmp / "state.json").write_text(json.dumps(state, indent=1, default=str))
    acc.wait_for_everyone()
    if acc.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        old = sorted(root.glob(f"{CHECKPOINT_PREFIX}*"), key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))
        for p in old[: max(0, len(old) - cfg.run.keep_checkpoints)]:
            shutil.rmtree(p, ignore_errors=True)
        logger.info("checkpoint %s (skips so far: %s)", final, merged)
    acc.wait_for_everyone()
    return final


def load_checkpoint(path: Path, acc: Any, module: Any, opt: Any, sched: Any) -> tuple[int, dict[str, int]]:
    """Restore adapter, optimiser, scheduler and this rank's RNG; return (step, counts)."""
    from .weights import load_adapter_weights

    state = json.loads((path / "state.json").read_text())
    if bool(state.get("sharded", False)) != is_sharded(module):
        raise ConfigError(f"{path}: written by a {'sharded (FSDP)' if state.get('sharded') else 'DDP'} run; resume "
                          "it with the same launch configuration (the optimiser state formats differ)")
    if is_sharded(module):
        load_sharded(module, opt, path / "adapter.safetensors", path / "optimizer.pt")
    else:
        load_adapter_weights(acc.unwrap_model(module).adapter, path / "adapter.safetensors")
        opt.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True))
    sched.load_state_dict(torch.load(path / "scheduler.pt", map_location="cpu", weights_only=True))
    rng = path / f"rng-rank{acc.process_index}.pt"
    _set_rng_state(torch.load(rng if rng.exists() else path / "rng-rank0.pt", weights_only=True))
    logger.info("resumed from %s at step %d", path, state["step"])
    return int(state["step"]), {k: int(v) for k, v in state.get("counts", {}).items()}


# ------------------------------------------------------------------------------------------------ loop
@dataclass
class TrainResult:
    step: int
    output_dir: Path
    counts: dict[str, int]
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: Path | None = None


def make_landmark_detector(detector_id: str, device: str = "cpu") -> Any:
    """GT landmarks from the faces package's detector: image -> (boxes (K, 4), landmarks (K, 5, 2))."""
    from multiid_bench.faces import load_detector

    det = load_detector(detector_id, device=device)

    def detect(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        faces = det.detect([image])[0]
        boxes = np.asarray([f.box for f in faces], np.float32).reshape(-1, 4)
        lms = np.asarray([f.landmarks for f in faces], np.float32).reshape(-1, 5, 2)
        return boxes, lms

    return detect


def _accelerator(cfg: TrainConfig) -> Any:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # a second run in the same process may use another precision; the process group (PartialState) is kept
    AcceleratorState._reset_state(reset_partial_state=False)
    cpu = not torch.cuda.is_available()
    return Accelerator(cpu=cpu, mixed_precision="no" if cpu else cfg.run.mixed_precision)


def train(cfg: TrainConfig, *, stop_after: int | None = None, accelerator: Any = None) -> TrainResult:
    """Run (or resume) training until ``run.max_steps``; ``stop_after`` ends early at that step (tests, budgets)."""
    from .bank import ReferenceBank
    from .data import open_source

    acc = accelerator or _accelerator(cfg)
    dist = Dist(acc.num_processes, acc.process_index)
    if cfg.run.global_batch % acc.num_processes:
        raise ConfigError(f"run.global_batch {cfg.run.global_batch} is not divisible by {acc.num_processes} processes")
    torch.manual_seed(cfg.run.seed)  # identical adapter initialisation on every rank
    comp = build_components(cfg, acc.device)
    module = TrainModule(comp.adapter, comp.transformer)
    # FSDP2 where accelerate has none (CPU / gloo processes): the same one-unit fully_shard, before the optimiser
    # is built (sharding replaces the parameters); on GPUs an FSDP launch lets accelerate shard in prepare()
    own_fsdp = wants_sharding(cfg) and not is_sharded(acc) and acc.num_processes > 1
    if own_fsdp:
        module = shard_module(module)
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"no trainable parameters for branch {cfg.model.branch!r}")
    o = cfg.optim
    opt = torch.optim.AdamW(params, lr=o.lr, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, o, cfg.run.max_steps) / o.lr)
    if own_fsdp:
        opt = acc.prepare(opt)
    else:
        module, opt = acc.prepare(module, opt)
    params = [p for p in module.parameters() if p.requires_grad]  # FSDP replaces them with sharded DTensors
    start, counts, resumed = 0, Counter(), None
    if cfg.run.resume != "none":
        ckpt = find_checkpoint(cfg.run.output_dir) if cfg.run.resume == "auto" else Path(cfg.run.resume)
        if ckpt is not None:
            if not (ckpt / "state.json").is_file():
                raise MissingDataError(f"run.resume: {ckpt} is not a complete checkpoint (no state.json)")
            start, restored = load_checkpoint(ckpt, acc, module, opt, sched)
            if acc.is_main_process:  # counts are summed over ranks at save time: restore them once
                counts.update(restored)
            resumed = ckpt
    sources = [open_source(p) for p in cfg.data.paths]
    for s in sources:
        for reason, message in s.index_errors:
            if acc.is_main_process and start == 0:
                counts[reason] += 1
            logger.warning("data: %s", message)
    bank = ReferenceBank.load(cfg.data.bank) if cfg.data.bank else None
    detector = make_landmark_detector(cfg.data.detector) if cfg.data.detector else None
    pred_detector = detector if cfg.loss.id_alignment == "prediction" else None
    stream = TrainStream(sources, cfg.data.weights, sample_builder(cfg, bank, detector), seed=cfg.run.seed)
    sampler = StepSampler(start, cfg.run.max_steps, cfg.run.global_batch, acc.process_index, acc.num_processes)
    loader = torch.utils.data.DataLoader(stream, batch_sampler=sampler, collate_fn=collate,
                                         num_workers=cfg.run.num_workers)
    out_dir = Path(cfg.run.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, float]] = []
    step = done = start
    adapter = acc.unwrap_model(module).adapter
    for step, batch in enumerate(loader, start=start):
        counts.update(reason for reason, _ in batch["skips"])
        counts.update(batch["events"])
        for reason, key in batch["skips"]:
            logger.warning("skipped record %s (%s)", key, reason)
        try:
            with acc.autocast():
                res = compute_step(comp, module, batch, cfg, step, dist, bank, pred_detector)
            acc.backward(res.loss)
        finally:
            adapter.set_conditioning(None)
        if o.grad_clip:
            acc.clip_grad_norm_(params, o.grad_clip)
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        row = {"step": step, "lr": lr, **res.logs}
        history.append(row)
        if acc.is_main_process and (step % cfg.run.log_every == 0 or step + 1 == cfg.run.max_steps):
            with open(out_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")
            logger.info("step %d %s", step, {k: round(v, 5) for k, v in res.logs.items()})
        done = step + 1
        if done % cfg.run.checkpoint_every == 0 or done == cfg.run.max_steps:
            save_checkpoint(acc, module, opt, sched, done, cfg, counts, {"last_logs": res.logs})
        if stop_after is not None and done >= stop_after:
            break
    full = full_adapter_state(module) if done == cfg.run.max_steps else None  # collective under FSDP
    if acc.is_main_process and done == cfg.run.max_steps:
        from .weights import save_adapter

        save_adapter(adapter, out_dir / "final" / "adapter.safetensors", state_dict=full)
    merged = _merged_counts(counts, acc)
    acc.wait_for_everyone()
    return TrainResult(done, out_dir, merged, history, resumed)
