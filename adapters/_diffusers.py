"""Base for adapters backed by a pipeline class that ships in ``diffusers`` (Kontext, Qwen-Image-Edit, OmniGen).

Subclasses name the class (``pipeline_class``) and the first diffusers release that has it; loading checks
both, honours the offline switches and maps an absent checkpoint to ``MissingWeightsError`` (exit 3).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from multiid_bench.adapters._common import first_image, hub_kwargs, require, torch_generator, weights_error
from multiid_bench.adapters.pipeline import PipelineAdapter, Request
from multiid_bench.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["DIFFUSERS_DEFAULTS", "DiffusersAdapter"]

# Settings every diffusers adapter accepts besides its own.
DIFFUSERS_DEFAULTS: dict[str, Any] = {
    "dtype": "bfloat16",  # torch dtype name of the weights in memory
    "offload": "none",  # none | model (enable_model_cpu_offload) | sequential
}
_OFFLOADS = ("none", "model", "sequential")


class DiffusersAdapter(PipelineAdapter):
    """``from_pretrained(settings["model_id"])`` of a diffusers pipeline; seeded with a ``torch.Generator``."""

    pipeline_class: ClassVar[str] = ""
    min_diffusers: ClassVar[str] = ""

    def pipeline_class_name(self) -> str:
        """The class to load (variants such as Qwen-Image-Edit-2509 pick another one)."""
        return self.pipeline_class

    def _load_pipeline(self, device: str) -> Any:
        extra = self.capabilities.pip_extra
        diffusers = require("diffusers", extra=extra, adapter=self.name)
        torch = require("torch", extra=extra, adapter=self.name)
        name = self.pipeline_class_name()
        cls = getattr(diffusers, name, None)
        if cls is None:
            raise MissingDependencyError(
                f"adapter {self.name!r} needs diffusers.{name} (diffusers >= {self.min_diffusers}); installed "
                f"diffusers is {getattr(diffusers, '__version__', '?')}. Run: pip install -U 'diffusers>={self.min_diffusers}'"
            )
        dtype = getattr(torch, str(self.settings["dtype"]), None)
        if dtype is None:
            raise ConfigError(f"adapter {self.name!r}: dtype={self.settings['dtype']!r} is not a torch dtype name")
        offload = self.settings["offload"]
        if offload not in _OFFLOADS:
            raise ConfigError(f"adapter {self.name!r}: offload must be one of {_OFFLOADS}, got {offload!r}")
        model_id = str(self.settings["model_id"])
        # diffusers renamed torch_dtype -> dtype (the old name warns); pass whichever this release reads.
        utils = getattr(diffusers, "utils", None)
        new_name = hasattr(getattr(utils, "deprecation_utils", None), "_TORCH_DTYPE_DEPRECATION_MESSAGE")
        dtype_kw = {"dtype": dtype} if new_name else {"torch_dtype": dtype}
        try:
            pipe = cls.from_pretrained(model_id, **dtype_kw, **hub_kwargs())
        except ImportError as e:  # a tokenizer/encoder backend the checkpoint needs (sentencepiece, ...)
            how = f"pip install 'multiid-bench[{extra}]'" if extra else f"pip install {e.name or 'the missing package'}"
            raise MissingDependencyError(f"adapter {self.name!r}: loading {model_id!r} needs {e}. Run: {how}") from e
        except (OSError, ValueError) as e:  # hub/cache lookups raise OSError subclasses; bad folders ValueError
            raise weights_error(self.name, model_id, e) from e
        if offload == "model":
            pipe.enable_model_cpu_offload()
        elif offload == "sequential":
            pipe.enable_sequential_cpu_offload()
        else:
            pipe.to(device)
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)
        return pipe

    def run_request(self, request: Request, seed: int) -> "Image.Image":
        kwargs = dict(request.call_kwargs)
        kwargs["generator"] = torch_generator(seed, self.device)
        return first_image(self.pipe(**kwargs))
