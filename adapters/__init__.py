"""Model adapters: turn a benchmark case into an image plus a record of exactly what the model was given.

Usage:
    >>> from multiid_bench.adapters import get_adapter, list_adapters
    >>> "dummy" in list_adapters()
    True
    >>> adapter = get_adapter("dummy")
    >>> adapter.capabilities.support_status
    'tested-in-ci'

Adding a model: write ``adapters/<model>.py`` with a :class:`~multiid_bench.adapters.pipeline.PipelineAdapter`
subclass (copy ``dummy.py``: it is the template), then add one line to ``_BUILTINS`` below. Third-party
packages instead declare an entry point::

    [project.entry-points."multiid_bench.adapters"]
    my-model = "my_package.adapter:MyAdapter"

Every entry is a ``"module:attr"`` string: listing names imports no generator code, and adapter modules
themselves import torch/diffusers only inside ``load()``.
"""
from __future__ import annotations

from typing import Any

from multiid_bench.adapters.base import Adapter, Capabilities, GenerationRecord, GenerationResult, derive_seed
from multiid_bench.adapters.pipeline import PipelineAdapter, Request
from multiid_bench.adapters.registry import Registry

__all__ = [
    "ADAPTERS",
    "Adapter",
    "Capabilities",
    "GenerationRecord",
    "GenerationResult",
    "PipelineAdapter",
    "Registry",
    "Request",
    "adapter_class",
    "derive_seed",
    "freeze",
    "get_adapter",
    "list_adapters",
    "register_adapter",
    "settings_with_preset",
]

ENTRY_POINT_GROUP = "multiid_bench.adapters"

# name -> ("module:attr", aliases). Keep sorted by name.
_BUILTINS: dict[str, tuple[str, tuple[str, ...]]] = {
    "copy-reference": ("multiid_bench.adapters.oracles:CopyReferenceAdapter", ("copy-ref",)),
    "dreamo": ("multiid_bench.adapters.dreamo:DreamOAdapter", ()),
    "dummy": ("multiid_bench.adapters.dummy:DummyAdapter", ()),
    "flux-kontext": ("multiid_bench.adapters.flux_kontext:FluxKontextAdapter", ("kontext", "flux.1-kontext")),
    "folder": ("multiid_bench.adapters.folder:FolderAdapter", ("images",)),
    "gpt4o": ("multiid_bench.adapters.gpt4o:GPT4oAdapter", ("gpt-4o", "gpt-image-1")),
    "ground-truth": ("multiid_bench.adapters.oracles:GroundTruthAdapter", ("gt",)),
    "id-patch": ("multiid_bench.adapters.id_patch:IDPatchAdapter", ("idpatch",)),
    "infiniteyou": ("multiid_bench.adapters.infiniteyou:InfiniteYouAdapter", ("infu",)),
    "instantid": ("multiid_bench.adapters.instantid:InstantIDAdapter", ()),
    "omnigen": ("multiid_bench.adapters.omnigen:OmniGenAdapter", ("omnigen-v1",)),
    "omnigen2": ("multiid_bench.adapters.omnigen2:OmniGen2Adapter", ()),
    "pulid-flux": ("multiid_bench.adapters.pulid_flux:PuLIDFluxAdapter", ("pulid",)),
    "qwen-image-edit": ("multiid_bench.adapters.qwen_image_edit:QwenImageEditAdapter", ("qwen-edit",)),
    "umo": ("multiid_bench.adapters.umo:UMOAdapter", ("umo-uno",)),
    "umo-omnigen2": ("multiid_bench.adapters.umo:UMOOmniGen2Adapter", ()),
    "uniportrait": ("multiid_bench.adapters.uniportrait:UniPortraitAdapter", ()),
    "uno": ("multiid_bench.adapters.uno:UNOAdapter", ()),
    "uso": ("multiid_bench.adapters.uso:USOAdapter", ()),
    "withanyone": ("multiid_bench.adapters.withanyone:WithAnyoneBenchAdapter", ("with-anyone",)),
}

ADAPTERS: Registry[type[Adapter]] = Registry("adapter", base_cls=Adapter, entry_point_group=ENTRY_POINT_GROUP)
for _name, (_target, _aliases) in _BUILTINS.items():
    ADAPTERS.register(_name, _target, aliases=_aliases)


def register_adapter(name: str, target: Any = None, *, aliases: tuple[str, ...] = ()) -> Any:
    """Register an adapter class (or ``"module:attr"``) under ``name``; usable as a class decorator."""
    return ADAPTERS.register(name, target, aliases=aliases)


def list_adapters() -> list[str]:
    """Canonical adapter names (built-ins and entry points), sorted. Imports no adapter module."""
    return ADAPTERS.names()


def adapter_class(name: str) -> type[Adapter]:
    """The adapter class for ``name`` or an alias (imports its module, which imports no torch)."""
    return ADAPTERS.get(name)


def get_adapter(name: str, **kwargs: Any) -> Adapter:
    """An instance of adapter ``name``; ``kwargs`` are its settings (see its ``capabilities.defaults``)."""
    return adapter_class(name)(**kwargs)


def freeze() -> None:
    """Make the adapter registry read-only (the CLI calls this once entry points are in)."""
    ADAPTERS.freeze()


def settings_with_preset(name: str, settings: dict[str, Any], preset: str | None) -> dict[str, Any]:
    """``settings`` plus ``preset`` for adapter ``name`` (``--preset paper|upstream`` of the CLI).

    Adapters without presets (builtins, folder, WithAnyone) have one setting set: ``paper`` is accepted and
    changes nothing; ``upstream`` is refused, since there is no other setting to switch to. A ``preset``
    key already in ``settings`` (``-S preset=...``) wins.
    """
    from multiid_bench.adapters.base import PRESETS
    from multiid_bench.errors import ConfigError

    if preset is None or "preset" in settings:
        return dict(settings)
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; choose one of {PRESETS}")
    if adapter_class(name).capabilities.presets:
        return {**settings, "preset": preset}
    if preset != "paper":
        raise ConfigError(f"adapter {name!r} has no presets (its defaults are its only setting); drop --preset")
    return dict(settings)
