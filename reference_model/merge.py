"""Merge an ArcFace run and a SigLIP run into one inference adapter (``mbench train merge``; spec §4.6).

As released, the two branches are trained as separate runs and merged afterwards (``merge_ipa.py``): the
merged file holds the ArcFace run's ``*_arc`` tensors and the SigLIP run's ``*_sig`` tensors. Inputs may be
our trainer's ``adapter.safetensors`` (merged names; a SigLIP run also carries its frozen, untrained ArcFace
branch, which is dropped here) or the released trainer's ``ipa.safetensors`` (training names, renamed with
``_arc`` / ``_sig``). The result is checked key by key and shape by shape against an adapter of the stored
(or FLUX.1-dev) size built on the meta device, so a 2.8 B merge needs no memory for a model.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multiid_bench.errors import BadInputError

from .weights import DEAD_KEY_PREFIXES, SIG_BRANCH_PREFIXES, convert_state_dict, detect_format, read_safetensors

__all__ = ["MergeReport", "merge_adapters"]

logger = logging.getLogger(__name__)

ARC_BRANCH_PREFIXES: tuple[str, ...] = ("ipa_arc.", "arcface_in_arc.")


@dataclass(frozen=True)
class MergeReport:
    out: Path
    arc_tensors: int
    sig_tensors: int
    dropped: tuple[str, ...]  # dead siglip_in_arc.* and the SigLIP run's own (frozen) ArcFace branch


def _branch(path: Path, fmt: str, prefixes: tuple[str, ...], what: str) -> tuple[dict[str, Any], dict, list[str]]:
    raw, meta = read_safetensors(Path(path))
    layout = detect_format(raw)
    other = "--sig" if what == "--arc" else "--arc"
    if layout.startswith("training") and layout != fmt and "siglip_in.3.weight" in raw:
        # training names carry no branch suffix; only the shape of siglip_in tells the runs apart
        raise BadInputError(f"{what} {path} is a {layout} file (from its siglip_in shape); did you swap {what} and "
                            f"{other}?")
    sd = convert_state_dict(raw, fmt if layout.startswith("training") else layout)
    kept = {k: v for k, v in sd.items() if k.startswith(prefixes)}
    if not kept:
        raise BadInputError(f"{what} {path}: no {'ArcFace' if what == '--arc' else 'SigLIP'}-branch tensors "
                            f"({', '.join(prefixes)}) in this {layout} file; did you swap {what} and {other}?")
    return kept, meta, sorted(set(sd) - set(kept))


def merge_adapters(arc: str | Path, sig: str | Path, out: str | Path) -> MergeReport:
    """``arc``'s ArcFace branch + ``sig``'s SigLIP branch -> ``out`` (merged names, config metadata)."""
    import torch
    from safetensors.torch import save_file

    from .identity_adapter import WithAnyoneAdapter

    arc_sd, arc_meta, arc_drop = _branch(Path(arc), "training-arc", ARC_BRANCH_PREFIXES, "--arc")
    sig_sd, sig_meta, sig_drop = _branch(Path(sig), "training-sig", SIG_BRANCH_PREFIXES, "--sig")
    stored = sig_meta.get("withanyone_config") or arc_meta.get("withanyone_config")
    cfg = {k: v for k, v in json.loads(stored).items() if not k.startswith("_")} if stored else {}
    cfg["siglip_branch"] = True
    with torch.device("meta"):
        template = WithAnyoneAdapter(**cfg).state_dict()
    merged = {**arc_sd, **sig_sd}
    missing = sorted(set(template) - set(merged))
    unexpected = sorted(set(merged) - set(template))
    shapes = [f"{k}: {tuple(merged[k].shape)} vs {tuple(template[k].shape)}" for k in sorted(set(merged) & set(template))
              if tuple(merged[k].shape) != tuple(template[k].shape)]
    if missing or unexpected or shapes:
        raise BadInputError(f"merge of {arc} + {sig} does not form one adapter: {len(missing)} missing {missing[:4]}, "
                            f"{len(unexpected)} unexpected {unexpected[:4]}, shape mismatches {shapes[:3]} "
                            "(were both runs trained on the same base model size?)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": "withanyone-merged", "withanyone_config": json.dumps(cfg),
            "merged_from": json.dumps({"arc": str(arc), "sig": str(sig)})}
    save_file({k: v.contiguous() for k, v in merged.items()}, str(out), metadata=meta)
    dropped = tuple(arc_drop + sig_drop)
    dead = [k for k in dropped if k.startswith(DEAD_KEY_PREFIXES)]
    logger.info("merged %d ArcFace + %d SigLIP tensors into %s; dropped %d (%d dead siglip_in_arc)",
                len(arc_sd), len(sig_sd), out, len(dropped), len(dead))
    return MergeReport(out, len(arc_sd), len(sig_sd), dropped)
