"""Helpers shared by adapters: reading a case's images, GT-derived geometry, prompts, optional imports.

Nothing here imports torch or diffusers at module level; the few helpers that need torch import it inside.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Sequence

from multiid_bench.errors import BadInputError, MissingDependencyError, MissingWeightsError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from multiid_bench.data.case import Case

__all__ = [
    "first_image",
    "fit_size",
    "gt_boxes_in_output",
    "gt_size",
    "hub_kwargs",
    "load_gt",
    "load_refs",
    "one_input_image",
    "order_left_to_right",
    "people_prompt",
    "require",
    "square_crop_boxes",
    "stitch_horizontally",
    "torch_generator",
    "weights_error",
]


def load_refs(case: "Case", order: Sequence[int] | None = None) -> list["Image.Image"]:
    """The case's reference images as RGB PIL images, in ``order`` (default: the case's order)."""
    from multiid_bench.images import load_image

    idx = range(len(case.refs)) if order is None else order
    return [load_image(case.refs[i]) for i in idx]


def load_gt(case: "Case") -> "Image.Image":
    """The GT image; a case without one is bad input for a method that needs it."""
    from multiid_bench.images import load_image

    if case.gt is None:
        raise BadInputError(f"case {case.id!r} has no GT image, but this method derives an input from it")
    return load_image(case.gt)


def gt_size(case: "Case") -> tuple[int, int]:
    """(W, H) of the decoded GT (EXIF-upright, which is the frame the GT boxes are given in)."""
    return load_gt(case).size


def gt_boxes_in_output(case: "Case", size: tuple[int, int]) -> tuple[tuple[float, float, float, float], ...]:
    """The case's GT face boxes rescaled from GT pixels to an output of ``size`` (W, H)."""
    from multiid_bench.adapters.base import scale_boxes

    if not case.boxes:
        raise BadInputError(f"case {case.id!r} has no GT face boxes; this method needs one box per reference")
    return scale_boxes(case.boxes, gt_size(case), size)


def order_left_to_right(case: "Case") -> tuple[int, ...]:
    """Reference indices sorted by the x-centre of their GT boxes (ties by y), e.g. for ID-Patch."""
    if not case.boxes:
        return tuple(range(len(case.refs)))
    return tuple(sorted(range(len(case.boxes)), key=lambda i: ((case.boxes[i][0] + case.boxes[i][2]) / 2,
                                                              (case.boxes[i][1] + case.boxes[i][3]) / 2)))


def people_prompt(prompt: str, n: int, single: str, each: str) -> str:
    """The case prompt followed by one sentence naming the references.

    ``single`` is used for one reference; otherwise ``each`` is formatted with ``k`` = 1..n and the
    sentences are joined by spaces. ``{n}`` is available in both.

    Example:
        >>> people_prompt("Two friends at a cafe.", 2, "The person is <1>.", "Person {k} is <{k}>.")
        'Two friends at a cafe. Person 1 is <1>. Person 2 is <2>.'
    """
    if n == 1:
        tail = single.format(n=n, k=1)
    else:
        tail = " ".join(each.format(n=n, k=k) for k in range(1, n + 1))
    return f"{prompt.rstrip()} {tail}".strip()


def fit_size(width: int, height: int, multiple: int) -> tuple[int, int]:
    """Floor both sides to a multiple (FLUX-style models need /16), never below one multiple."""
    return max(multiple, width // multiple * multiple), max(multiple, height // multiple * multiple)


def stitch_horizontally(images: Sequence["Image.Image"], height: int = 512, gap: int = 0) -> "Image.Image":
    """References side by side on one canvas, each resized to ``height`` (for one-image editors)."""
    from PIL import Image

    resized = [im.resize((max(1, round(im.width * height / im.height)), height), Image.LANCZOS) for im in images]
    canvas = Image.new("RGB", (sum(r.width for r in resized) + gap * (len(resized) - 1), height), (255, 255, 255))
    x = 0
    for r in resized:
        canvas.paste(r, (x, 0))
        x += r.width + gap
    return canvas


def one_input_image(refs: Sequence["Image.Image"], stitch_height: int) -> tuple["Image.Image", str]:
    """``(image, conditioning)`` for a one-image editor: the reference itself (``"single"``), or every reference
    side by side, left to right in the order given (``"stitched-left-to-right"``)."""
    if len(refs) == 1:
        return refs[0], "single"
    return stitch_horizontally(refs, stitch_height), "stitched-left-to-right"


def require(module: str, *, extra: str | None, adapter: str, hint: str = "") -> Any:
    """Import an optional module or raise :class:`MissingDependencyError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        how = f"pip install 'multiid-bench[{extra}]'" if extra else "see docs/adapters.md"
        more = f" {hint}" if hint else ""
        raise MissingDependencyError(
            f"adapter {adapter!r} needs the Python module {module!r} ({e}). Install it with: {how}.{more}"
        ) from e


def weights_error(adapter: str, repo_id: str, err: BaseException | None = None) -> MissingWeightsError:
    """The error for generator weights absent from the Hugging Face cache (and not downloadable)."""
    cause = f" ({type(err).__name__}: {err})" if err else ""
    offline = " Offline mode is on (HF_HUB_OFFLINE / MBENCH_OFFLINE)." if _offline() else ""
    return MissingWeightsError(
        f"adapter {adapter!r}: weights {repo_id!r} are not in the Hugging Face cache{cause}.{offline} "
        f"Fetch them on a machine with access with: hf download {repo_id} "
        f"(gated repos need 'hf auth login' and accepting the licence), or pass model_id=<local folder>."
    )


def _offline() -> bool:
    from multiid_bench._io import is_offline

    return is_offline()


def hub_kwargs() -> dict[str, Any]:
    """``from_pretrained`` keywords honouring the toolkit's offline switches."""
    return {"local_files_only": True} if _offline() else {}


def torch_generator(seed: int, device: str | None = "cpu") -> Any:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (torch imported here, not at module level)."""
    import torch

    dev = device or "cpu"
    if dev.startswith("cuda") and not torch.cuda.is_available():
        dev = "cpu"
    return torch.Generator(device=dev).manual_seed(int(seed))


def first_image(output: Any) -> "Image.Image":
    """The first image of a diffusers-style output (``.images[0]``), a list, or a bare image."""
    images = getattr(output, "images", output)
    if isinstance(images, (list, tuple)):
        if not images:
            raise RuntimeError("the pipeline returned no image")
        return images[0]
    return images


def square_crop_boxes(
    boxes: Sequence[Sequence[float]], size: tuple[int, int]
) -> tuple[tuple[float, float, float, float], tuple[tuple[float, float, float, float], ...]]:
    """A square crop of an image of ``size`` (W, H) that keeps every box, and the boxes inside it.

    The square has side ``min(W, H)`` and is centred on the union of the boxes, then shifted to lie inside
    the image (deterministic; the official script picks a random offset). When the union is wider than the
    square, the crop is the whole image (boxes keep their coordinates; the caller then stretches).

    Example:
        >>> crop, inside = square_crop_boxes([(600, 100, 700, 200)], (800, 400))
        >>> crop
        (400.0, 0.0, 800.0, 400.0)
        >>> inside
        ((200.0, 100.0, 300.0, 200.0),)
    """
    w, h = size
    side = float(min(w, h))
    ux1, uy1 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    ux2, uy2 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    if ux2 - ux1 > side or uy2 - uy1 > side:
        return (0.0, 0.0, float(w), float(h)), tuple((float(a), float(b), float(c), float(d)) for a, b, c, d in boxes)
    cx, cy = (ux1 + ux2) / 2, (uy1 + uy2) / 2
    x0 = min(max(cx - side / 2, 0.0), w - side)
    y0 = min(max(cy - side / 2, 0.0), h - side)
    inside = tuple((b[0] - x0, b[1] - y0, b[2] - x0, b[3] - y0) for b in boxes)
    return (x0, y0, x0 + side, y0 + side), inside
