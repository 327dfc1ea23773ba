"""How ``mb.evaluate`` calls a user's model and reads what it returns.

Two kinds of model need no adapter:

* a function ``fn(case) -> image``: :func:`to_pil_image` turns what it returns into one RGB ``PIL.Image``
  (PIL, numpy or torch, HWC or CHW, uint8 or float in [0, 1], a ``.images``-style output of one image) or
  stops with a message saying what to return instead;
* a ``diffusers.DiffusionPipeline``: :func:`pipeline_adapter` wraps it with one documented call convention
  (docs/api.md): ``pipe(prompt=case.prompt, <references>, generator=torch.Generator("cpu").manual_seed(seed),
  height=H, width=W, **settings).images[0]`` where ``<references>`` is ``image=`` when ``__call__`` takes it,
  else ``ip_adapter_image=`` when an IP-Adapter is loaded. A pipeline without either is refused with the
  wrapper to write. The pipeline's class, ``name_or_path`` and component config are recorded in the run.

Nothing here imports torch or diffusers at module level: a pipeline is recognised only when ``diffusers`` is
already imported (it must be, for the caller to hold one).
"""
from __future__ import annotations

import inspect
import sys
from typing import TYPE_CHECKING, Any, Mapping

from multiid_bench.errors import ConfigError, stops_run

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from multiid_bench.adapters.base import Adapter

__all__ = [
    "RETURN_TYPES",
    "is_diffusers_pipeline",
    "pipeline_adapter",
    "pipeline_description",
    "pipeline_reference_argument",
    "to_pil_image",
]

RETURN_TYPES = ("a PIL.Image, an HxWx3 uint8 numpy array, a torch.Tensor or numpy array (CHW or HWC, uint8 "
                "or float in [0, 1]), an output with .images holding one image, or None (not applicable)")
"""What a function model may return (quoted in the error when it returns something else)."""

_CHANNELS = (1, 3, 4)
_FLOAT_SLACK = 1e-3  # float outputs a hair outside [0, 1] (VAE decode rounding) are clipped, not refused


def _image_like(value: Any) -> bool:
    return hasattr(value, "convert") or hasattr(value, "ndim")


def _one_image(value: Any, label: str, case_id: str) -> Any:
    """Unwrap ``.images`` outputs and one-element lists; several images are refused (which one would count?)."""
    images = getattr(value, "images", None)
    if images is not None and not hasattr(value, "convert"):
        value = images
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    elif isinstance(value, list) and value and all(_image_like(v) for v in value):
        raise ConfigError(f"{label} returned {len(value)} images for case {case_id}; return exactly one "
                          "(a pipeline that reads a list of references as a batch makes one image per "
                          "reference: write a wrapper fn(case) that combines the references, docs/api.md)")
    return value


def _array_to_pil(array: Any, label: str, case_id: str) -> "Image.Image":
    """An ``ndarray`` (HWC or CHW, uint8 or float in [0, 1], optionally a batch of one) as an RGB image."""
    import numpy as np
    from PIL import Image

    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ConfigError(f"{label} returned an array of shape {tuple(array.shape)} for case {case_id}; "
                          f"return {RETURN_TYPES}")
    if array.shape[-1] not in _CHANNELS and array.shape[0] in _CHANNELS:
        array = np.moveaxis(array, 0, -1)  # CHW -> HWC
    if array.shape[-1] not in _CHANNELS:
        raise ConfigError(f"{label} returned an array of shape {tuple(array.shape)} for case {case_id}: no axis "
                          "of 1, 3 or 4 channels first or last; return an HxWx3 or 3xHxW image")
    if array.dtype == np.uint8:
        pixels = array
    elif np.issubdtype(array.dtype, np.floating):
        lo, hi = float(np.nanmin(array)), float(np.nanmax(array))
        if not (np.isfinite(array).all() and lo >= -_FLOAT_SLACK and hi <= 1 + _FLOAT_SLACK):
            raise ConfigError(f"{label} returned float pixels in [{lo:.3g}, {hi:.3g}] for case {case_id}; float "
                              "images must be in [0, 1] (map a [-1, 1] output with (x + 1) / 2)")
        pixels = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    else:
        raise ConfigError(f"{label} returned {array.dtype} pixels for case {case_id}; return uint8 or float in [0, 1]")
    if pixels.shape[-1] == 1:
        pixels = pixels[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(pixels)).convert("RGB")


def to_pil_image(value: Any, label: str, case_id: str) -> "Image.Image | None":
    """What a function model returned for ``case_id``, as one RGB ``PIL.Image`` (``None`` stays ``None``).

    Args:
        value: the return value (see :data:`RETURN_TYPES`).
        label: the model's name, for the error message.
        case_id: the case, for the error message.

    Returns:
        An RGB image, or ``None`` when the model said "not applicable".

    Raises:
        ConfigError: any other type, several images, an array with no channel axis, or float pixels
            outside [0, 1] (the run stops: every case would fail the same way).

    Example:
        >>> import numpy as np
        >>> to_pil_image(np.zeros((3, 8, 6), np.float32), "fn", "c0").size
        (6, 8)
    """
    if value is None:
        return None
    value = _one_image(value, label, case_id)
    if hasattr(value, "convert"):
        return value.convert("RGB")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu")
        value = (tensor if tensor.dtype == torch.uint8 else tensor.float()).numpy()
    import numpy as np

    if isinstance(value, np.ndarray):
        return _array_to_pil(value, label, case_id)
    raise ConfigError(f"{label} returned {type(value).__name__} for case {case_id}; return {RETURN_TYPES}")


def is_diffusers_pipeline(model: Any) -> bool:
    """Whether ``model`` is a ``diffusers.DiffusionPipeline`` (checked without importing diffusers)."""
    diffusers = sys.modules.get("diffusers")
    if diffusers is None:
        return False
    return isinstance(model, diffusers.DiffusionPipeline)


def _call_parameters(pipe: Any) -> Mapping[str, inspect.Parameter]:
    return inspect.signature(type(pipe).__call__).parameters


def _ip_adapter_loaded(pipe: Any) -> bool:
    denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    return getattr(denoiser, "encoder_hid_proj", None) is not None


def pipeline_reference_argument(pipe: Any) -> str:
    """The keyword that carries the references: ``image`` or ``ip_adapter_image`` (see the module docstring).

    Raises:
        ConfigError: the pipeline takes no image input, naming the wrapper to write instead.
    """
    params = _call_parameters(pipe)
    if "image" in params:
        return "image"
    if "ip_adapter_image" in params and _ip_adapter_loaded(pipe):
        return "ip_adapter_image"
    cls = type(pipe).__name__
    hint = (" (it accepts ip_adapter_image=, but no IP-Adapter is loaded: pipe.load_ip_adapter(...) first)"
            if "ip_adapter_image" in params else "")
    raise ConfigError(
        f"{cls} takes no reference image: its __call__ has no image= argument{hint}, so it cannot see the "
        "identities to keep. Write a wrapper and evaluate that instead: def generate(case): return "
        f"my_{cls.lower()}_with_identity(case.prompt, case.references, seed=case.seed) (docs/api.md)")


def pipeline_description(pipe: Any) -> dict[str, Any]:
    """What the run records about a pipeline: class, ``name_or_path`` and its component config."""
    from multiid_bench.adapters.base import jsonable

    config = dict(getattr(pipe, "config", {}) or {})
    name_or_path = getattr(pipe, "name_or_path", None) or config.get("_name_or_path")
    return {"class": f"{type(pipe).__module__}.{type(pipe).__qualname__}", "name_or_path": name_or_path,
            "config": jsonable(config)}


def _default_size(pipe: Any) -> tuple[int, int]:
    """(W, H) the pipeline makes when not told: its default sample size times the VAE scale factor."""
    scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    sample = getattr(pipe, "default_sample_size", None)
    if sample is None:
        sample = getattr(getattr(getattr(pipe, "unet", None), "config", None), "sample_size", None)
    side = int(sample) * scale if isinstance(sample, int) else 1024
    return side, side


def pipeline_adapter(pipe: Any, name: str | None = None, settings: Mapping[str, Any] | None = None) -> "Adapter":
    """Wrap a ``diffusers.DiffusionPipeline`` as an adapter (call convention: module docstring).

    Args:
        pipe: the pipeline, already on its device; it is not moved.
        name: the label of the run (default: the pipeline class name).
        settings: extra ``__call__`` keywords (``num_inference_steps``, ``guidance_scale``, ``height``,
            ``width``...); each must be a parameter of the pipeline's ``__call__``.

    Returns:
        An :class:`~multiid_bench.adapters.base.Adapter` whose ``describe()`` records the pipeline.

    Raises:
        ConfigError: the pipeline takes no image input, or a setting is not a ``__call__`` parameter.
    """
    from multiid_bench.adapters.base import Capabilities
    from multiid_bench.adapters.pipeline import PipelineAdapter, Request
    from multiid_bench.images import load_image

    label = name or type(pipe).__name__
    params = _call_parameters(pipe)
    reference_arg = pipeline_reference_argument(pipe)
    settings = dict(settings or {})
    takes_size = "height" in params and "width" in params
    unknown = sorted(k for k in settings if k not in params)
    if unknown:
        raise ConfigError(f"settings {unknown} are not parameters of {type(pipe).__name__}.__call__; "
                          f"it takes {sorted(k for k in params if k != 'self')}")
    for fixed in ("prompt", reference_arg, "generator"):
        if fixed in settings:
            raise ConfigError(f"settings may not set {fixed!r}: the bench passes it for each case (docs/api.md)")
    native = _default_size(pipe)
    caps = Capabilities(max_ids=4, native_res=native, licence="user pipeline", integration="diffusers",
                        defaults={**({"height": None, "width": None} if takes_size else {}), **settings},
                        description=f"diffusers {type(pipe).__name__} called with {reference_arg}=")

    class DiffusersPipelineAdapter(PipelineAdapter):
        capabilities = caps

        def _load_pipeline(self, device: str) -> Any:  # pragma: no cover - the pipeline is always given
            return pipe

        def build_request(self, case: Any, seed: int) -> Request:
            self.case_id = case.id
            refs = [load_image(path) for path in case.refs]
            kwargs: dict[str, Any] = {k: v for k, v in self.settings.items() if k not in ("height", "width")}
            kwargs.update(prompt=case.prompt, **{reference_arg: refs[0] if len(refs) == 1 else refs})
            size = self.output_size() if takes_size else refs[0].size  # no height/width: the size of image=
            if takes_size:
                kwargs.update(width=size[0], height=size[1])
            return Request(prompt=case.prompt, size=size, images=tuple(refs), reference_order=tuple(range(len(refs))),
                           call_kwargs=kwargs, extra={"reference_argument": reference_arg})

        def run_request(self, request: Request, seed: int) -> "Image.Image":
            try:
                import torch  # a CPU generator: the same noise on every device (diffusers moves it)

                output = self.pipe(**request.call_kwargs, generator=torch.Generator("cpu").manual_seed(int(seed)))
            except Exception as e:
                if len(request.images) < 2 or stops_run(e):
                    raise
                raise RuntimeError(f"{e} ({label} got the case's {len(request.images)} references as a list in "
                                   f"{reference_arg}=; a pipeline that reads a list as a batch cannot take several "
                                   "identities this way: write a wrapper fn(case) that combines them, docs/api.md)"
                                   ) from e
            image = to_pil_image(output, label, self.case_id)
            if image is None:
                raise ConfigError(f"{label} returned no image")
            return image

        def describe(self) -> dict[str, Any]:
            return {**super().describe(), "pipeline": pipeline_description(self.pipe)}

    DiffusersPipelineAdapter.name, DiffusersPipelineAdapter.version = label, "user"
    return DiffusersPipelineAdapter(pipe=pipe, **settings)
