"""``dummy``: deterministic synthetic images for CI, and the template for writing a new adapter.

What it makes: a seeded smooth background with each reference image pasted into its GT face box (scaled to
the output size), moved, resized and brightened by a small seed-dependent amount. The references are real
faces, so detectors find them and the identity metrics give sensible, non-trivial numbers; the same
(case, seed) always gives the same bytes, and another seed gives another image.

How to write a real adapter from this file (every model adapter in this folder follows the same shape):

1. ``capabilities``: a frozen :class:`Capabilities` with the method's limits, licence, extra, pinned
   upstream revision, weight ids, GT-derived inputs and ``defaults`` (every setting, with the spec's value).
2. ``_load_pipeline(device)``: heavy imports and weights. Missing packages ->
   :func:`~multiid_bench.adapters._common.require` (``MissingDependencyError``, exit 3); missing weights
   -> :func:`~multiid_bench.adapters._common.weights_error` (``MissingWeightsError``, exit 3).
3. ``build_request(case, seed)``: pure. Apply the prompt template, choose the reference order, scale GT
   boxes to the output size, fill ``call_kwargs`` with exactly what the pipeline gets, declare
   ``gt_derived_inputs``.
4. ``run_request(request, seed)``: call ``self.pipe(**request.call_kwargs)`` (adding a seeded generator)
   and return one PIL image.

Tests inject ``pipe=<fake>`` and assert on ``call_kwargs``; here the "pipeline" is :class:`Compositor`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from multiid_bench.adapters._common import gt_size, load_refs
from multiid_bench.adapters.base import Capabilities, scale_boxes
from multiid_bench.adapters.pipeline import PipelineAdapter, Request

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from multiid_bench.data.case import Case

__all__ = ["Compositor", "DummyAdapter"]


class Compositor:
    """The dummy's pipeline: a pure function of its inputs (numpy + Pillow only).

    Args (of ``__call__``):
        images: reference images, one per box, in the same order.
        boxes: (x1, y1, x2, y2) target face boxes in output pixels.
        width / height: output size.
        seed: controls the background and the per-face jitter.
        jitter: largest relative shift / resize / brightness change per face (0 = exact paste).
        expand: the pasted square's side is ``expand`` times the box's longer side (refs carry margin).
    """

    def __call__(
        self,
        *,
        images: Sequence["Image.Image"],
        boxes: Sequence[Sequence[float]],
        width: int,
        height: int,
        seed: int,
        jitter: float = 0.05,
        expand: float = 1.3,
    ) -> "Image.Image":
        import numpy as np
        from PIL import Image, ImageEnhance

        rng = np.random.default_rng(seed)
        canvas = Image.fromarray(_background(rng, width, height))
        for im, box in zip(images, boxes):
            x1, y1, x2, y2 = box
            dx, dy, ds, db = rng.uniform(-jitter, jitter, size=4)
            side = max(x2 - x1, y2 - y1) * expand * (1.0 + ds)
            cx = (x1 + x2) / 2 + dx * (x2 - x1)
            cy = (y1 + y2) / 2 + dy * (y2 - y1)
            scale = side / max(im.width, im.height)
            w, h = max(1, round(im.width * scale)), max(1, round(im.height * scale))
            patch = ImageEnhance.Brightness(im.resize((w, h), Image.LANCZOS)).enhance(1.0 + db)
            canvas.paste(patch, (round(cx - w / 2), round(cy - h / 2)))
        return canvas


def _background(rng: Any, width: int, height: int) -> Any:
    """A seeded two-colour vertical gradient with mild noise (uint8 H x W x 3)."""
    import numpy as np

    top, bottom = rng.uniform(40, 215, size=(2, 3))
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    img = top[None, None, :] * (1 - t) + bottom[None, None, :] * t
    img = np.broadcast_to(img, (height, width, 3)) + rng.normal(0.0, 6.0, size=(height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


class DummyAdapter(PipelineAdapter):
    """Deterministic composites of the references in their GT boxes (CPU, milliseconds, no weights)."""

    name = "dummy"
    version = "1.0"
    capabilities = Capabilities(
        max_ids=4,
        native_res=(512, 512),
        licence="Apache-2.0 (toolkit code; no weights)",
        support_status="tested-in-ci",
        integration="builtin",
        needs_boxes=False,  # uses GT boxes when the case has them, a row layout otherwise
        seed_supported=True,
        prompt_template="{prompt}",
        gt_derived_inputs=("boxes", "gt_size"),
        defaults={
            "long_side": 512,  # output long side; the aspect follows the GT (or square without a GT)
            "width": None,  # fixed output size, overrides long_side
            "height": None,
            "jitter": 0.05,
            "expand": 1.3,
        },
        description="Synthetic composites of the references in their GT boxes, for CI and examples.",
    )

    def _load_pipeline(self, device: str) -> Compositor:
        return Compositor()

    def _size(self, case: "Case") -> tuple[int, int, tuple[int, int] | None]:
        """Output (W, H) and the GT size (None without a GT)."""
        src = gt_size(case) if case.gt is not None else None
        if self.settings["width"] and self.settings["height"]:
            return int(self.settings["width"]), int(self.settings["height"]), src
        long_side = int(self.settings["long_side"])
        if src is None:
            return long_side, long_side, None
        w, h = src
        s = long_side / max(w, h)
        return max(16, round(w * s)), max(16, round(h * s)), src

    def build_request(self, case: "Case", seed: int) -> Request:
        width, height, src = self._size(case)
        order = tuple(range(len(case.refs)))
        gt_inputs: list[str] = []
        if case.boxes and src is not None:
            boxes = scale_boxes(case.boxes, src, (width, height))
            gt_inputs.append("boxes")
        else:  # no GT layout: one slot per person in a row, faces a third of the height
            n = len(case.refs)
            side = min(width / n, height) / 3
            boxes = tuple(
                ((i + 0.5) * width / n - side / 2, height / 2 - side / 2, (i + 0.5) * width / n + side / 2,
                 height / 2 + side / 2)
                for i in range(n)
            )
        if src is not None and not (self.settings["width"] and self.settings["height"]):
            gt_inputs.append("gt_size")
        prompt = self.capabilities.prompt_template.format(prompt=case.prompt)
        images = tuple(load_refs(case, order))
        kwargs = {"images": images, "boxes": boxes, "width": width, "height": height, "seed": seed,
                  "jitter": float(self.settings["jitter"]), "expand": float(self.settings["expand"])}
        return Request(prompt=prompt, size=(width, height), images=images, reference_order=order, boxes=boxes,
                       gt_derived_inputs=tuple(gt_inputs), call_kwargs=kwargs)

    def run_request(self, request: Request, seed: int) -> "Image.Image":
        return self.pipe(**request.call_kwargs)
