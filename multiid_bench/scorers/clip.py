"""CLIP-I and CLIP-T with open_clip (ViT-B/16, OpenAI weights), as raw cosines in [-1, 1].

* CLIP-I = ``cos(CLIP_image(generated), CLIP_image(GT))``; CLIP-T = ``cos(CLIP_image(generated),
  CLIP_text(prompt))``. Both raw: **not x100, not clamped at 0** (torchmetrics' CLIPScore is
  ``max(100 * cos, 0)``; 0.30 here is "30" there).
* Text: open_clip's BPE tokenizer, 77 tokens including start/end; longer prompts are cut to the first 75
  word pieces and the end token (what ``CLIPTokenizer(truncation=True, max_length=77)`` produces).
* Weights: ``timm/vit_base_patch16_clip_224.openai`` (OpenAI's ViT-B/16, the same tensors the reference's
  ``openai/clip-vit-base-patch16`` holds) as a safetensors file from the weights store, built with QuickGELU
  as OpenAI trained it. Any other open_clip model can be selected with a local checkpoint.
* Preprocessing ``"reference"`` (default) reproduces the reference's ``CLIPProcessor`` (PIL path) bit for
  bit: shortest side to 224 with PIL bicubic, centre crop 224 with floor offsets, /255, CLIP mean/std.
  ``"open_clip"`` uses open_clip's own transform, identical except that torchvision's centre crop rounds
  the offset half-to-even: a one-pixel shift when the resized long side minus 224 is 3 mod 4.
  See docs/scorers.md.
* Precision: ``dtype="float32"`` (default; the reference ran CLIP in fp32, so the paper profile keeps it).
  ``"float16"`` / ``"bfloat16"`` run the whole model in that dtype (for GPUs; features are returned as
  float32). The dtype is in the card and the cache key; the measured difference is in docs/scorers.md.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

import numpy as np
import numpy.typing as npt

from multiid_bench.errors import ConfigError
from multiid_bench.scorers.base import ImageScorer, ScorerCard, paired_cosine, resolve_weight_file

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = [
    "CLIP_CONTEXT_LENGTH",
    "CLIP_MEAN",
    "CLIP_STD",
    "ClipPreprocess",
    "ClipScorer",
    "clip_i_scores",
    "clip_reference_pixels",
    "clip_t_scores",
]

ClipPreprocess = Literal["reference", "open_clip"]
_PREPROCESS_MODES: tuple[str, ...] = ("reference", "open_clip")
ClipDtype = Literal["float32", "float16", "bfloat16"]
_DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")

#: CLIP's text context: 77 tokens including the start and end tokens.
CLIP_CONTEXT_LENGTH = 77
#: OpenAI CLIP normalisation (``CLIPProcessor`` and open_clip's ``OPENAI_DATASET_MEAN/STD``).
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class _KnownWeights:
    weight_id: str
    filename: str
    quick_gelu: bool


#: (open_clip model name, pretrained tag) -> weights-store entry. Others need ``checkpoint=``.
_KNOWN: dict[tuple[str, str], _KnownWeights] = {
    ("ViT-B-16", "openai"): _KnownWeights("clip-vit-b-16-openai", "open_clip_model.safetensors", quick_gelu=True),
}


def clip_reference_pixels(
    image: "Image.Image",
    size: int = 224,
    mean: Sequence[float] = CLIP_MEAN,
    std: Sequence[float] = CLIP_STD,
) -> "torch.Tensor":
    """``CLIPProcessor``'s PIL path for one RGB image: ``(3, size, size)`` float32.

    Shortest side to ``size`` (long side ``int(size * long / short)``) with PIL bicubic, centre crop with
    offsets ``(extent - size) // 2``, scale to [0, 1], subtract ``mean`` and divide by ``std`` per channel.
    """
    import torch
    from PIL import Image

    w, h = image.size
    new_w, new_h = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    image = image.crop((left, top, left + size, top + size))
    t = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
    return (t - m) / s


def clip_i_scores(generated: npt.ArrayLike, ground_truth: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """CLIP-I per case: raw cosine of generated-image and GT-image CLIP features, row by row.

    Args:
        generated: ``(N, D)`` image features of the generated images.
        ground_truth: ``(N, D)`` image features of the GT photos, row ``i`` = case ``i``.

    Returns:
        ``(N,)`` float64 in [-1, 1]; not x100, not clamped.
    """
    return paired_cosine(generated, ground_truth)


def clip_t_scores(image_features: npt.ArrayLike, text_features: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """CLIP-T per case: raw cosine of generated-image features and prompt features, row by row.

    Args:
        image_features: ``(N, D)`` image features of the generated images.
        text_features: ``(N, D)`` text features of the prompts (77-token truncation).

    Returns:
        ``(N,)`` float64 in [-1, 1]; not x100, not clamped (a mismatched pair may be negative).
    """
    return paired_cosine(image_features, text_features)


class ClipScorer(ImageScorer):
    """open_clip image and text encoder for CLIP-I / CLIP-T; features are L2-normalised float32.

    Args:
        model: open_clip model name (default ``"ViT-B-16"``, the paper's); recorded in the card.
        pretrained: pretrained tag naming the weights-store entry (``"openai"``).
        checkpoint: a local open_clip state-dict file (safetensors, or a .bin/.pt loaded with
            ``weights_only=True``) instead of the store; required for models not in the store.
        quick_gelu: use QuickGELU (OpenAI's activation). ``None``: the store entry's value (True for
            OpenAI weights), else False. Wrong here gives silently wrong features, so it is recorded.
        preprocess: ``"reference"`` (CLIPProcessor, default) or ``"open_clip"``.
        dtype: ``"float32"`` (default, as the reference), ``"float16"`` or ``"bfloat16"`` (GPU speed).
        batch_size: images (and prompts) per forward pass.
        cache_dir / offline: weights-store options (``--cache-dir``, ``--offline``).

    Example:
        >>> s = ClipScorer()                                        # doctest: +SKIP
        >>> s.load("cuda")                                          # doctest: +SKIP
        >>> g, t = s.encode_images([gen_img]), s.encode_images([gt_img])   # doctest: +SKIP
        >>> clip_i_scores(g, t), clip_t_scores(g, s.encode_texts([prompt]))  # doctest: +SKIP
    """

    scorer_id = "clip"
    metrics = ("clip_i", "clip_t")
    VERSION = "1.0.0"

    def __init__(
        self,
        model: str = "ViT-B-16",
        pretrained: str = "openai",
        *,
        checkpoint: str | os.PathLike[str] | None = None,
        quick_gelu: bool | None = None,
        preprocess: ClipPreprocess = "reference",
        dtype: ClipDtype = "float32",
        batch_size: int = 32,
        cache_dir: str | os.PathLike[str] | None = None,
        offline: bool | None = None,
    ) -> None:
        super().__init__(batch_size=batch_size, cache_dir=cache_dir, offline=offline)
        if preprocess not in _PREPROCESS_MODES:
            raise ConfigError(f"CLIP preprocess must be one of {_PREPROCESS_MODES}, got {preprocess!r}")
        if dtype not in _DTYPES:
            raise ConfigError(f"CLIP dtype must be one of {_DTYPES}, got {dtype!r}")
        self.dtype = dtype
        known = _KNOWN.get((model, pretrained))
        if known is None and checkpoint is None:
            names = ", ".join(f"{m}/{p}" for m, p in _KNOWN)
            raise ConfigError(
                f"no weights-store entry for open_clip model {model!r} with pretrained {pretrained!r} "
                f"(known: {names}); pass checkpoint=<local open_clip state dict> to use it."
            )
        self.model_name = model
        self.pretrained = pretrained
        self.checkpoint = checkpoint
        self.quick_gelu = known.quick_gelu if (quick_gelu is None and known is not None) else bool(quick_gelu)
        self.preprocess = preprocess
        self._known = known
        self._path: Path | None = None
        self._image_size = 224
        self._model: Any = None
        self._tokenizer: Any = None
        self._oc_transform: Any = None

    @property
    def weight_ids(self) -> tuple[str, ...]:
        return () if self.checkpoint is not None or self._known is None else (self._known.weight_id,)

    # ---- hooks --------------------------------------------------------------------------------
    def _resolve(self) -> ScorerCard:
        weight_id = self._known.weight_id if self._known else f"local:{self.model_name}"
        filename = self._known.filename if self._known else None
        self._path, sha = resolve_weight_file(weight_id, filename, self.checkpoint,
                                              cache_dir=self.cache_dir, offline=self.offline)
        import open_clip  # after the weights: a missing file fails fast, without importing torch

        cfg = open_clip.get_model_config(self.model_name)
        if cfg is None:
            import difflib

            close = difflib.get_close_matches(self.model_name, open_clip.list_models(), n=3)
            raise ConfigError(f"unknown open_clip model {self.model_name!r}; did you mean {', '.join(close) or '-'}?")
        size = cfg["vision_cfg"].get("image_size", 224)
        self._image_size = int(size if isinstance(size, int) else size[0])
        if self.preprocess == "reference":
            desc = (f"CLIPProcessor (PIL): shortest side {self._image_size} bicubic, centre crop floor offsets, "
                    "/255, CLIP mean/std")
        else:
            desc = f"open_clip val transform: Resize({self._image_size}, bicubic), CenterCrop (round half even), CLIP mean/std"
        return ScorerCard(
            id=self.scorer_id,
            version=self.VERSION,
            metrics=self.metrics,
            model=f"open_clip:{self.model_name} pretrained={self.pretrained} quick_gelu={self.quick_gelu}",
            weights=((f"{weight_id}/{filename or self._path.name}", sha),),
            preprocess=desc + f"; text: open_clip BPE, {CLIP_CONTEXT_LENGTH} tokens with truncation",
            preprocess_version=f"clip-{self.preprocess}-{self._image_size}-v1",
            dtype=self.dtype,
            feature_dim=int(cfg["embed_dim"]),
        )

    def _build(self, device: str) -> None:
        import inspect

        import open_clip

        kwargs: dict[str, Any] = {}
        if "weights_only" in inspect.signature(open_clip.create_model_and_transforms).parameters:
            kwargs["weights_only"] = True  # newer open_clip; safetensors never unpickle, and torch >= 2.6 defaults to it
        try:
            model, _, transform = open_clip.create_model_and_transforms(
                self.model_name, pretrained=str(self._path), precision="fp32", device=device,
                force_quick_gelu=self.quick_gelu, **kwargs,
            )
        except RuntimeError as e:
            raise ConfigError(
                f"{self._path} does not fit open_clip model {self.model_name!r}: {e}. "
                "Pass the model name the checkpoint was trained with."
            ) from e
        self._model = model.eval() if self.dtype == "float32" else model.to(self._torch_dtype()).eval()
        self._oc_transform = transform
        self._tokenizer = open_clip.get_tokenizer(self.model_name, context_length=CLIP_CONTEXT_LENGTH)

    def _pixels(self, image: "Image.Image") -> "torch.Tensor":
        if self.preprocess == "reference":
            return clip_reference_pixels(image, self._image_size)
        return self._oc_transform(image)

    def _torch_dtype(self) -> "torch.dtype":
        import torch

        return getattr(torch, self.dtype)

    def _forward(self, batch: "torch.Tensor") -> "torch.Tensor":
        import torch.nn.functional as F

        return F.normalize(self._model.encode_image(batch.to(self._torch_dtype())).float(), dim=-1)

    # ---- text ---------------------------------------------------------------------------------
    def tokenize(self, prompts: Sequence[str]) -> "torch.Tensor":
        """``(N, 77)`` token ids: start, word pieces, end, zero padding; long prompts truncated."""
        if not self.loaded:
            raise RuntimeError("ClipScorer: call load(device) before tokenize")
        bad = [i for i, p in enumerate(prompts) if not isinstance(p, str)]
        if bad:
            raise ConfigError(f"prompts must be strings; entries {bad[:5]} are not")
        return self._tokenizer(list(prompts), context_length=CLIP_CONTEXT_LENGTH)

    def encode_texts(self, prompts: Sequence[str]) -> npt.NDArray[np.float32]:
        """L2-normalised projected text features, ``(N, D)`` float32, batched, inference mode."""
        import torch
        import torch.nn.functional as F

        tokens = self.tokenize(prompts)
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, tokens.shape[0], self.batch_size):
                feats = self._model.encode_text(tokens[start : start + self.batch_size].to(self.device))
                out.append(F.normalize(feats.float(), dim=-1).cpu().numpy())
        if not out:
            return np.zeros((0, self.card.feature_dim), dtype=np.float32)
        return np.concatenate(out, axis=0)
