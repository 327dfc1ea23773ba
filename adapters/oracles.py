"""Oracle "models" that bound the metrics: ``ground-truth`` and ``copy-reference``.

They reproduce the GT/Ref rows of the paper's Table 1 and are the end-to-end test of the whole scoring
path: if the runner is right, ``ground-truth`` scores Sim(GT) = 1 and copy-paste = -1 on every case, and
``copy-reference`` scores Sim(Ref) = 1 and copy-paste = +1 on single-person cases (exact cosines).

* ``ground-truth`` returns the case's GT photo, decoded as the scorer decodes it.
* ``copy-reference`` returns, for a single-person case, the reference exactly as scoring sees it: the
  reference image black-padded to ``ref_pad_ratio`` (the runner sets it to the run's value). For a
  multi-person case it pastes each reference (a square face crop, resized with LANCZOS to the square
  around the GT face box) onto the GT photo, so each identity sits where the scorer looks for it. The
  face is resampled, re-detected and re-aligned in a new context, so copy-paste is positive but below +1
  by however much that moves the embedding relative to the GT-reference angle: small for ArcFace
  (GT and reference of one person are ~1 rad apart), large for dlib (~0.17 rad apart; the offline
  demo measures copy-paste 0.5-0.65 on its multi-person cases).

Neither is a generator: both declare what they take from the ground truth.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from multiid_bench.adapters.base import Adapter, Capabilities, GenerationResult
from multiid_bench.errors import ImageDecodeError

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case

__all__ = ["CopyReferenceAdapter", "GroundTruthAdapter"]


class GroundTruthAdapter(Adapter):
    """Returns the GT photo: the upper bound of Sim(GT) and the lower bound (-1) of copy-paste."""

    name = "ground-truth"
    version = "1.0"
    capabilities = Capabilities(
        max_ids=4,
        native_res=(512, 512),
        licence="n/a (returns the bench's own GT photo)",
        support_status="tested-in-ci",
        integration="builtin",
        seed_supported=False,
        gt_derived_inputs=("gt_image",),
        description="Oracle: the GT photo itself (Sim(GT) = 1, copy-paste = -1).",
    )

    def generate(self, case: "Case", seed: int) -> GenerationResult:
        from multiid_bench.images import load_image

        t0 = time.perf_counter()
        if case.gt is None:
            return GenerationResult(None, self.record(case, seed), "failed", f"case {case.id!r} has no GT image")
        try:
            image = load_image(case.gt)
        except ImageDecodeError as e:
            return GenerationResult(None, self.record(case, seed), "failed", str(e))
        rec = self.record(case, seed, prompt=case.prompt, gt_derived_inputs=("gt_image",),
                          elapsed_s=time.perf_counter() - t0, output_size=image.size)
        return GenerationResult(image, rec, "ok", None)


class CopyReferenceAdapter(Adapter):
    """Returns the reference (single person) or pastes the references into the GT boxes (multi-person)."""

    name = "copy-reference"
    version = "1.0"
    capabilities = Capabilities(
        max_ids=4,
        native_res=(512, 512),
        licence="n/a (returns the bench's own reference images)",
        support_status="tested-in-ci",
        integration="builtin",
        seed_supported=False,
        gt_derived_inputs=("gt_image", "boxes"),
        defaults={"ref_pad_ratio": 1.5},
        description="Oracle: the reference as scored (1 person) or pasted into the GT boxes (Sim(Ref) = 1, copy-paste = +1).",
    )

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        ratio = float(self.settings["ref_pad_ratio"])
        if ratio < 1.0:
            from multiid_bench.errors import ConfigError

            raise ConfigError(f"copy-reference: ref_pad_ratio must be >= 1 (1 = no padding), got {ratio}")
        self.settings["ref_pad_ratio"] = ratio

    def generate(self, case: "Case", seed: int) -> GenerationResult:
        t0 = time.perf_counter()
        try:
            if len(case.refs) == 1:
                image, inputs = self._single(case), ()
            else:
                if case.gt is None or len(case.boxes) != len(case.refs):
                    reason = (f"copy-reference pastes references into the GT face boxes; case {case.id!r} has "
                              f"{'no GT image' if case.gt is None else f'{len(case.boxes)} boxes for {len(case.refs)} references'}")
                    return self.skipped(case, seed, reason)
                image, inputs = self._pasted(case), ("gt_image", "boxes")
        except ImageDecodeError as e:
            return GenerationResult(None, self.record(case, seed), "failed", str(e))
        rec = self.record(case, seed, prompt=case.prompt, reference_order=tuple(range(len(case.refs))),
                          gt_derived_inputs=inputs, elapsed_s=time.perf_counter() - t0, output_size=image.size)
        return GenerationResult(image, rec, "ok", None)

    def _single(self, case: "Case") -> Any:
        from multiid_bench.data.refcrop import pad_reference
        from multiid_bench.images import load_image

        ref = load_image(case.refs[0])
        ratio = self.settings["ref_pad_ratio"]
        return pad_reference(ref, ratio) if ratio != 1.0 else ref

    def _pasted(self, case: "Case") -> Any:
        from PIL import Image

        from multiid_bench.images import load_image

        canvas = load_image(case.gt).copy()  # type: ignore[arg-type]
        for ref_path, (x1, y1, x2, y2) in zip(case.refs, case.boxes):
            # The reference is a square crop around its face; paste it into the square around the GT box
            # (shorter side grown symmetrically), so the face keeps its aspect ratio and scale. Parts that
            # fall outside the photo are clipped by ``paste``.
            side = max(1, int(round(max(x2 - x1, y2 - y1))))
            left = int(round((x1 + x2) / 2 - side / 2))
            top = int(round((y1 + y2) / 2 - side / 2))
            face = load_image(ref_path).resize((side, side), Image.Resampling.LANCZOS)
            canvas.paste(face, (left, top))
        return canvas
