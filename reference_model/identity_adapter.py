"""WithAnyone identity adapter over a stock diffusers ``FluxTransformer2DModel``.

Public API (what the trainer and the pipelines import)::

    from multiid_bench.reference_model.identity_adapter import WithAnyoneAdapter, build_token_mask

    adapter = WithAnyoneAdapter.from_transformer_config(transformer.config, siglip_branch=False)
    adapter.attach(transformer)                       # forward hooks on all 19 + 38 blocks
    cond = adapter.prepare(arcface, boxes=boxes, height=512, width=512, lambda_arc=1.0)
    with adapter.conditioning(cond):                  # keep it open through loss.backward()
        v = transformer(hidden_states=x, ...).sample  # image tokens in box i see identity i only
    params = adapter.trainable_parameters()
    save_adapter(adapter, "ipa.safetensors")          # in weights.py; load_adapter_file(...) reads it back

Design (spec reference-model.md §1.2-1.7, §1.11; paper eq. 9):

* Identity tokens: ArcFace (B, N, 512) raw embeddings -> MLP -> (B, N*8, D); optional SigLIP branch with
  (B, N, 256, 768) patch features -> per-token MLP, concatenated per identity as [256 SigLIP, 8 ArcFace].
* One masked cross-attention module per double and single block; the update
  ``X_img += sum_b lambda_b * CA_b(E_b, X_img)`` is applied after each block to the first
  ``num_target_tokens`` image tokens only (text tokens and Kontext context tokens are never touched).
* It is a forward hook, not an attention processor, because the update follows the whole block (after the
  feed-forward and, in single blocks, after the gated projection), which no processor sees.
* The box -> token mask is built once per call, vectorised. Only tokens inside at least one box are
  gathered as queries and written back with ``index_add``: a token outside every box is never read nor
  written, so its update is exactly zero by construction (no reliance on torch's fully-masked-row softmax).
* A branch whose lambda is 0 is not computed at all, so lambda = 0 reproduces stock FLUX bit-for-bit.
* With gradient checkpointing the blocks are re-run during ``backward()``: keep the ``conditioning``
  context open until backward has finished (or use ``set_conditioning`` / ``set_conditioning(None)``).
"""
from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from multiid_bench.errors import BadInputError, ConfigError

__all__ = [
    "IdentityConditioning",
    "IdentityCrossAttention",
    "TokenMask",
    "WithAnyoneAdapter",
    "boxes_to_tensor",
    "build_token_mask",
]

logger = logging.getLogger(__name__)

BRANCHES = ("arc", "sig")


def _token_mlp(in_dim: int, hidden: int, out_dim: int, eps: float) -> nn.Sequential:
    # Sequential indices 0 (Linear), 1 (GELU), 2 (LayerNorm), 3 (Linear) are the checkpoint key names.
    return nn.Sequential(
        nn.Linear(in_dim, hidden), nn.GELU(), nn.LayerNorm(hidden, eps=eps), nn.Linear(hidden, out_dim)
    )


class IdentityCrossAttention(nn.Module):
    """Masked cross-attention from image tokens (queries) to identity tokens (keys/values).

    ``CA(E, X) = W_o softmax_mask((W_q LN2(X)) (W_k LN1(E))^T / sqrt(head_dim)) (W_v LN1(E))``; no RoPE,
    no biases on the projections, heads are contiguous ``head_dim`` slices, ``to_kv`` = [K | V].
    """

    def __init__(self, dim: int, heads: int, head_dim: int = 64, eps: float = 1e-5) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.norm1 = nn.LayerNorm(dim, eps=eps)  # identity tokens (keys/values side)
        self.norm2 = nn.LayerNorm(dim, eps=eps)  # image tokens (query side)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(
        self, id_tokens: torch.Tensor, image_tokens: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """id_tokens (B, K, D), image_tokens (B, Lq, D), mask (B, 1, Lq, K) bool (True = may attend) -> (B, Lq, D)."""
        # Functional calls instead of submodule calls: this runs 57 times per step and module-call overhead
        # is what dominates at small resolutions (CPU-bound kernel launches).
        b, lq, d = image_tokens.shape
        n1, n2 = self.norm1, self.norm2
        x = F.layer_norm(image_tokens, (d,), n2.weight, n2.bias, n2.eps)
        e = F.layer_norm(id_tokens, (d,), n1.weight, n1.bias, n1.eps)
        q = F.linear(x, self.to_q.weight).view(b, lq, self.heads, self.head_dim).transpose(1, 2)
        k, v = F.linear(e, self.to_kv.weight).chunk(2, dim=-1)
        k = k.view(b, -1, self.heads, self.head_dim).transpose(1, 2)
        v = v.view(b, -1, self.heads, self.head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return F.linear(out.transpose(1, 2).reshape(b, lq, self.heads * self.head_dim), self.to_out.weight)


def boxes_to_tensor(boxes: Any, *, device: torch.device | str | None = None) -> torch.Tensor:
    """Boxes as (B, N, 4) float32: accepts a tensor/array (N, 4) or (B, N, 4), or nested sequences."""
    t = torch.as_tensor(boxes, dtype=torch.float32, device=device) if not isinstance(boxes, torch.Tensor) else boxes
    t = t.to(device=device, dtype=torch.float32) if device is not None else t.float()
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[-1] != 4:
        raise BadInputError(
            f"boxes must have shape (N, 4) or (B, N, 4) as [x1, y1, x2, y2] in output pixels; got {tuple(t.shape)}."
        )
    return t


@dataclass(frozen=True)
class TokenMask:
    """Box -> image-token assignment for one call, built once (spec §1.7).

    Attributes:
        in_box: (B, N, L) bool, token l lies in (touches) box n of sample b.
        rows: (R,) long, the image tokens inside at least one box of any sample (the only tokens updated).
        row_valid: (B, R, 1) bool, row r is inside some box of sample b (else its update is forced to 0).
        grid: (gh, gw) token grid.
        needs_row_zeroing: some row is inside another sample's box only (batches with per-sample boxes).
    """

    in_box: torch.Tensor
    rows: torch.Tensor
    row_valid: torch.Tensor
    grid: tuple[int, int]
    needs_row_zeroing: bool = True

    @property
    def num_identities(self) -> int:
        return int(self.in_box.shape[1])

    def attention_mask(self, tokens_per_identity: int) -> torch.Tensor:
        """(B, 1, R, N*K) bool mask: row r may attend to identity n's K tokens iff r is in box n.

        Rows inside no box of this sample are set all-True so the softmax stays finite; their output is
        discarded through ``row_valid`` (never trusted to be zero).
        """
        sel = self.in_box[:, :, self.rows].transpose(1, 2)  # (B, R, N)
        sel = sel | ~self.row_valid
        return sel.repeat_interleave(tokens_per_identity, dim=2).unsqueeze(1)


def build_token_mask(boxes: Any, height: int, width: int, *, vae_scale_factor: int = 8) -> TokenMask:
    """Vectorised box -> token mask for FLUX's 2x2-packed latent grid.

    Grid ``gh = (H // vae_scale_factor) // 2``, ``gw`` likewise; token index ``row * gw + col`` (matches
    diffusers ``_pack_latents``). Box ``[x1, y1, x2, y2]`` covers columns ``[floor(x1/p), ceil(x2/p))`` and
    rows ``[floor(y1/p), ceil(y2/p))`` with ``p = 2 * vae_scale_factor`` (16 px), clipped to the grid:
    every patch the box touches (outward rounding, the official inference rule).
    """
    b = boxes_to_tensor(boxes)
    gh, gw = (int(height) // vae_scale_factor) // 2, (int(width) // vae_scale_factor) // 2
    p = 2.0 * vae_scale_factor
    x0 = torch.floor(b[..., 0] / p).clamp(0, gw)
    x1 = torch.ceil(b[..., 2] / p).clamp(0, gw)
    y0 = torch.floor(b[..., 1] / p).clamp(0, gh)
    y1 = torch.ceil(b[..., 3] / p).clamp(0, gh)
    cols = torch.arange(gw, device=b.device, dtype=b.dtype)
    rows = torch.arange(gh, device=b.device, dtype=b.dtype)
    col_in = (cols >= x0[..., None]) & (cols < x1[..., None])  # (B, N, gw)
    row_in = (rows >= y0[..., None]) & (rows < y1[..., None])  # (B, N, gh)
    in_box = (row_in[..., :, None] & col_in[..., None, :]).reshape(b.shape[0], b.shape[1], gh * gw)
    any_box = in_box.any(dim=1)  # (B, L)
    active = torch.nonzero(any_box.any(dim=0), as_tuple=False).flatten()
    row_valid = any_box[:, active].unsqueeze(-1)
    return TokenMask(in_box=in_box, rows=active, row_valid=row_valid, grid=(gh, gw),
                     needs_row_zeroing=not bool(row_valid.all()))


@dataclass
class IdentityConditioning:
    """Per-call state read by the block hooks: identity tokens, masks and scales, computed once.

    ``tokens[branch]`` is (B, N*K_branch, D); ``masks[branch]`` is an additive (B, 1, R, N*K_branch) mask
    (0 = may attend, -inf = blocked) or None for global injection (no boxes); ``scales[branch]`` is lambda
    (only non-zero branches are present). ``branch_order``: "sum" adds ``λ_a CA_a + λ_s CA_s`` to the image in
    one addition; "official" as released: after double blocks ``(X + λ_a CA_a) + λ_s CA_s`` (one branch at a
    time, both from the same X), after single blocks the sum (differs from "sum" only in rounding, bf16).
    """

    tokens: dict[str, torch.Tensor]
    scales: dict[str, float]
    masks: dict[str, torch.Tensor | None]
    token_mask: TokenMask | None
    num_target_tokens: int
    extras: dict[str, Any] = field(default_factory=dict)
    branch_order: str = "sum"

    @property
    def active(self) -> bool:
        return bool(self.tokens) and (self.token_mask is None or self.token_mask.rows.numel() > 0)


def _expand_batch(t: torch.Tensor, batch: int, what: str) -> torch.Tensor:
    if t.shape[0] == batch:
        return t
    if t.shape[0] == 1:
        return t.expand(batch, *t.shape[1:])
    raise BadInputError(
        f"identity {what} have batch {t.shape[0]} but the transformer batch is {batch}; pass one set per sample or one "
        "set for all."
    )


class WithAnyoneAdapter(ModelMixin, ConfigMixin):
    """All WithAnyone weights (ArcFace/SigLIP token MLPs and 57 cross-attention modules per branch).

    Attribute names reproduce the released merged checkpoint keys: ``ipa_arc.{i}``, ``arcface_in_arc``
    and, with the SigLIP branch, ``ipa_sig.{i}``, ``arcface_in_sig``, ``siglip_in_sig``. Defaults equal
    FLUX.1-dev sizes; use ``from_transformer_config`` to match any (e.g. tiny) transformer.

    Args:
        hidden_size: transformer width D (FLUX: heads * head_dim = 3072).
        num_attention_heads: cross-attention heads (FLUX's head count, 24).
        num_double_blocks / num_single_blocks: number of modules after double / single blocks (19 / 38).
        ca_head_dim: cross-attention head dim (64, not FLUX's 128).
        arcface_dim / num_arcface_tokens / arcface_mlp_ratio: 512-d embedding -> MLP(4D) -> 8 tokens.
        siglip_branch: build the SigLIP branch (present in the released merged file).
        siglip_dim / num_siglip_tokens: SigLIP vision width and patch tokens (768, 256).
        norm_eps: LayerNorm epsilon (1e-5).
    """

    config_name = "withanyone_adapter_config.json"

    @register_to_config
    def __init__(
        self,
        hidden_size: int = 3072,
        num_attention_heads: int = 24,
        num_double_blocks: int = 19,
        num_single_blocks: int = 38,
        ca_head_dim: int = 64,
        arcface_dim: int = 512,
        num_arcface_tokens: int = 8,
        arcface_mlp_ratio: int = 4,
        siglip_branch: bool = True,
        siglip_dim: int = 768,
        num_siglip_tokens: int = 256,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        d, n_mod = hidden_size, num_double_blocks + num_single_blocks
        mlp_hidden = arcface_mlp_ratio * d

        def ca_list() -> nn.ModuleList:
            return nn.ModuleList(
                IdentityCrossAttention(d, num_attention_heads, ca_head_dim, norm_eps) for _ in range(n_mod)
            )

        self.arcface_in_arc = _token_mlp(arcface_dim, mlp_hidden, num_arcface_tokens * d, norm_eps)
        self.ipa_arc = ca_list()
        if siglip_branch:
            self.arcface_in_sig = _token_mlp(arcface_dim, mlp_hidden, num_arcface_tokens * d, norm_eps)
            self.siglip_in_sig = _token_mlp(siglip_dim, d, d, norm_eps)
            self.ipa_sig = ca_list()
        # Plain (non-Module) references for the per-layer hot path, bypassing Module/ModelMixin __getattr__.
        self._ca_by_branch: dict[str, list[IdentityCrossAttention]] = {"arc": list(self.ipa_arc)}
        if siglip_branch:
            self._ca_by_branch["sig"] = list(self.ipa_sig)
        self._hook_handles: list[Any] = []
        self._attached_to: int | None = None
        self._active: IdentityConditioning | None = None
        self.reset_parameters()

    # ----------------------------------------------------------------------------------------- build
    @classmethod
    def from_transformer_config(cls, transformer_config: Mapping[str, Any], **overrides: Any) -> WithAnyoneAdapter:
        """Size the adapter from a ``FluxTransformer2DModel`` config (dict or FrozenDict)."""
        cfg = dict(transformer_config)
        kwargs = {
            "hidden_size": int(cfg["num_attention_heads"]) * int(cfg["attention_head_dim"]),
            "num_attention_heads": int(cfg["num_attention_heads"]),
            "num_double_blocks": int(cfg["num_layers"]),
            "num_single_blocks": int(cfg["num_single_layers"]),
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    @property
    def branches(self) -> tuple[str, ...]:
        return ("arc", "sig") if self.config.siglip_branch else ("arc",)

    @property
    def tokens_per_identity(self) -> dict[str, int]:
        k_arc = self.config.num_arcface_tokens
        return {"arc": k_arc, "sig": self.config.num_siglip_tokens + k_arc}

    @property
    def _weight_dtype(self) -> torch.dtype:
        # ModelMixin.dtype walks every submodule; this is read in the per-layer hot path, so look at one weight.
        return self.arcface_in_arc[0].weight.dtype

    def ca_modules(self, branch: str) -> nn.ModuleList:
        return self.ipa_arc if branch == "arc" else self.ipa_sig

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Official initialisation (spec §1.9): LayerNorm weights AND biases ~ N(0, 0.02), so the
        cross-attention starts near zero; projections ~ N(0, D^-1/2); token-MLP Linears ~ N(0, fan_in^-1/2)
        except SigLIP's first Linear, which the official code draws with std 512^-1/2."""
        d = self.config.hidden_size
        for name, module in self.named_modules():
            if isinstance(module, nn.LayerNorm):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.normal_(module.bias, std=0.02)
            elif isinstance(module, nn.Linear):
                if name.startswith("ipa_"):
                    std = d**-0.5
                elif name.startswith("siglip_in") and name.endswith(".0"):
                    std = self.config.arcface_dim**-0.5
                else:
                    std = module.in_features**-0.5
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.normal_(module.bias, std=0.02)

    def trainable_parameters(self, branch: str | None = None) -> list[nn.Parameter]:
        """Parameters to optimise: every adapter parameter, or those of one branch ('arc' / 'sig')."""
        if branch is None:
            return [p for p in self.parameters() if p.requires_grad]
        if branch not in self.branches:
            raise ConfigError(f"branch {branch!r} is not built; this adapter has {self.branches}.")
        return [p for n, p in self.named_parameters() if n.split(".")[0].endswith("_" + branch) and p.requires_grad]

    # ------------------------------------------------------------------------------ identity tokens
    def encode_identities(
        self, arcface: torch.Tensor, siglip: torch.Tensor | None = None, *, branches: Sequence[str] = ("arc",)
    ) -> dict[str, torch.Tensor]:
        """ArcFace (B, N, 512) [+ SigLIP (B, N, T, 768)] -> {branch: (B, N*K_branch, D)}.

        Batch-major input (the official code takes identity-major (N, B, 512)); identity i owns token
        slice [K*i, K*(i+1)).
        """
        arc = arcface if arcface.ndim == 3 else arcface.unsqueeze(0)
        if arc.ndim != 3 or arc.shape[-1] != self.config.arcface_dim:
            raise BadInputError(
                f"ArcFace embeddings must be (N, {self.config.arcface_dim}) or (B, N, {self.config.arcface_dim}); "
                f"got {tuple(arcface.shape)}."
            )
        arc = arc.to(self._weight_dtype)
        bsz, n, d, k = arc.shape[0], arc.shape[1], self.config.hidden_size, self.config.num_arcface_tokens
        out: dict[str, torch.Tensor] = {}
        if "arc" in branches:
            out["arc"] = self.arcface_in_arc(arc).reshape(bsz, n * k, d)
        if "sig" in branches:
            if siglip is None:
                raise BadInputError("lambda_sig > 0 needs SigLIP features (B, N, 256, 768) for every reference.")
            sig = siglip if siglip.ndim == 4 else siglip.unsqueeze(0)
            if sig.shape[:2] != arc.shape[:2] or sig.shape[-1] != self.config.siglip_dim:
                raise BadInputError(
                    f"SigLIP features {tuple(siglip.shape)} do not match ArcFace {tuple(arc.shape)} "
                    f"(expected (B, N, T, {self.config.siglip_dim}))."
                )
            sig_tok = self.siglip_in_sig(sig.to(self._weight_dtype))  # (B, N, T, D)
            arc_tok = self.arcface_in_sig(arc).reshape(bsz, n, k, d)
            out["sig"] = torch.cat([sig_tok, arc_tok], dim=2).reshape(bsz, -1, d)
        return out

    def prepare(
        self,
        arcface: torch.Tensor,
        *,
        boxes: Any | None,
        height: int,
        width: int,
        siglip: torch.Tensor | None = None,
        lambda_arc: float = 1.0,
        lambda_sig: float = 0.0,
        vae_scale_factor: int = 8,
        branch_order: str = "sum",
    ) -> IdentityConditioning:
        """Everything the hooks need for one call: tokens of the non-zero branches and their masks.

        ``boxes`` (N, 4) / (B, N, 4) in output pixels, one per identity in the same order, or None for
        global injection (every image token attends to all identities, as the official code without boxes).
        """
        if branch_order not in ("sum", "official"):
            raise ConfigError(f"branch_order must be 'sum' or 'official', got {branch_order!r}.")
        scales = {"arc": float(lambda_arc), "sig": float(lambda_sig)}
        for name, value in scales.items():
            if not math.isfinite(value):
                raise ConfigError(f"lambda_{name} must be finite, got {value}.")
        if scales["sig"] != 0.0 and not self.config.siglip_branch:
            raise ConfigError(
                "lambda_sig is non-zero but this adapter has no SigLIP branch; build it with siglip_branch=True "
                "(and load the merged withanyone.safetensors) or set lambda_sig=0."
            )
        live = tuple(b for b in BRANCHES if scales[b] != 0.0)
        dev = self.arcface_in_arc[0].weight.device
        arc = torch.as_tensor(arcface, device=dev)
        arc = arc if arc.ndim == 3 else arc.unsqueeze(0)
        token_mask = None
        if boxes is not None:
            box_t = boxes_to_tensor(boxes, device=dev)
            if box_t.shape[1] != arc.shape[1]:
                raise BadInputError(
                    f"{box_t.shape[1]} boxes for {arc.shape[1]} identities: give exactly one box per reference, "
                    "in the same order."
                )
            token_mask = build_token_mask(box_t, height, width, vae_scale_factor=vae_scale_factor)
        sig = None if siglip is None else torch.as_tensor(siglip, device=dev)
        tokens = self.encode_identities(arc, sig, branches=live) if live else {}
        k = self.tokens_per_identity
        masks: dict[str, torch.Tensor | None] = {}
        for b in live:  # additive float masks (0 / -inf), converted once here rather than by SDPA in every layer
            allowed = token_mask.attention_mask(k[b]) if token_mask is not None else None
            if allowed is None:
                masks[b] = None
                continue
            zeros = torch.zeros(allowed.shape, dtype=self._weight_dtype, device=dev)
            masks[b] = zeros.masked_fill(~allowed, float("-inf"))
        n_target = ((int(height) // vae_scale_factor) // 2) * ((int(width) // vae_scale_factor) // 2)
        return IdentityConditioning(
            tokens=tokens, scales={b: scales[b] for b in live}, masks=masks, token_mask=token_mask,
            num_target_tokens=n_target, branch_order=branch_order,
        )

    # ---------------------------------------------------------------------------------- injection
    def attach(self, transformer: nn.Module) -> None:
        """Register one forward hook per double and single block of ``transformer`` (idempotent)."""
        if self._attached_to == id(transformer):
            return
        if self._attached_to is not None:
            raise ConfigError("this adapter is already attached to another transformer; call detach() first.")
        doubles, singles = transformer.transformer_blocks, transformer.single_transformer_blocks
        cfg = self.config
        t_dim = transformer.config.num_attention_heads * transformer.config.attention_head_dim
        if (len(doubles), len(singles), t_dim) != (cfg.num_double_blocks, cfg.num_single_blocks, cfg.hidden_size):
            raise ConfigError(
                f"adapter sized for {cfg.num_double_blocks}+{cfg.num_single_blocks} blocks of width {cfg.hidden_size}, "
                f"transformer has {len(doubles)}+{len(singles)} of width {t_dim}; build it with "
                "WithAnyoneAdapter.from_transformer_config(transformer.config)."
            )
        blocks = list(doubles) + list(singles)
        self._hook_handles = [blk.register_forward_hook(self._make_hook(i)) for i, blk in enumerate(blocks)]
        self._attached_to = id(transformer)

    def detach(self) -> None:
        for h in self._hook_handles:
            h.remove()
        self._hook_handles, self._attached_to = [], None

    def set_conditioning(self, cond: IdentityConditioning | None) -> None:
        """Activate (or clear with None) the per-call identity state that the hooks read."""
        self._active = cond

    @contextlib.contextmanager
    def conditioning(self, cond: IdentityConditioning) -> Iterator[IdentityConditioning]:
        previous, self._active = self._active, cond
        try:
            yield cond
        finally:
            self._active = previous

    def _make_hook(self, index: int):
        def hook(module: nn.Module, args: Any, output: Any) -> Any:
            cond = self._active
            if cond is None or not cond.active:
                return output
            encoder_hidden_states, hidden_states = output
            return encoder_hidden_states, self.inject(index, hidden_states, cond)

        return hook

    def inject(self, index: int, hidden_states: torch.Tensor, cond: IdentityConditioning) -> torch.Tensor:
        """Apply module ``index``'s update to the image stream (B, S, D); only target tokens in boxes change."""
        bsz, seq = hidden_states.shape[:2]
        n_target = cond.num_target_tokens
        if seq < n_target:
            raise BadInputError(
                f"image stream has {seq} tokens but the identity state expects {n_target} target tokens."
            )
        tm = cond.token_mask
        rows = tm.rows if tm is not None else None
        x = hidden_states[:, rows] if rows is not None else hidden_states[:, :n_target]
        modules = self._ca_by_branch
        x = x.to(modules["arc"][index].to_q.weight.dtype)
        updates = []
        for branch, tokens in cond.tokens.items():
            e = _expand_batch(tokens, bsz, "tokens")
            mask = cond.masks[branch]
            mask = _expand_batch(mask, bsz, "masks") if mask is not None else None
            updates.append(modules[branch][index].forward(e, x, mask) * cond.scales[branch])
        if cond.branch_order != "official" or index >= self.config.num_double_blocks:
            update = updates[0]
            for out in updates[1:]:
                update = update + out
            updates = [update]
        for update in updates:  # official order after double blocks: one branch at a time
            hidden_states = self._add_update(hidden_states, update, tm, rows, n_target, bsz)
        return hidden_states

    @staticmethod
    def _add_update(hidden_states: torch.Tensor, update: torch.Tensor, tm: TokenMask | None,
                    rows: torch.Tensor | None, n_target: int, bsz: int) -> torch.Tensor:
        if tm is not None and tm.needs_row_zeroing:  # rows inside only another sample's box: force exact zeros
            valid = _expand_batch(tm.row_valid, bsz, "boxes")
            update = torch.where(valid, update, torch.zeros((), dtype=update.dtype, device=update.device))
        update = update.to(hidden_states.dtype)
        if rows is not None:
            return hidden_states.index_add(1, rows, update)
        return torch.cat([hidden_states[:, :n_target] + update, hidden_states[:, n_target:]], dim=1)
