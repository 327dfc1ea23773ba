"""Entry points of other installed packages (plug-ins), read without importing them.

One reader for every plug-in group (``multiid_bench.face_models``: :mod:`multiid_bench.faces.plugins`;
``multiid_bench.metrics``: :mod:`multiid_bench.metrics.plugins`), so each lists its plug-ins the same way and
records the same identity (``package==version``) in a run.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

from multiid_bench.errors import ConfigError

__all__ = ["InstalledPlugin", "installed_plugins", "plugin_instance", "resolve_plugin"]


@dataclass(frozen=True)
class InstalledPlugin:
    """One entry point: its name, ``"module:attr"`` target and the package that declares it.

    Attributes:
        name: the entry point's name (the face model's or metric's id).
        target: ``"module:attr"``.
        distribution: the declaring package's name.
        distribution_version: its version.

    Example:
        >>> InstalledPlugin("myface", "my_package.faces:MODEL", "my-package", "0.1").identity
        'my-package==0.1'
    """

    name: str
    target: str
    distribution: str
    distribution_version: str

    @property
    def identity(self) -> str:
        """``package==version``: what a run records and the comparability key compares."""
        return f"{self.distribution}=={self.distribution_version}"


def installed_plugins(group: str, kind: str) -> dict[str, InstalledPlugin]:
    """Every entry point of ``group``, by name, sorted; nothing is imported.

    Args:
        group: the entry-point group, e.g. ``"multiid_bench.face_models"``.
        kind: what a plug-in of the group is, for the error message (``"face model"``).

    Returns:
        ``{name: InstalledPlugin}``.

    Raises:
        ConfigError: two packages declare the same name with different targets (which one would a run use?).

    Example:
        >>> installed_plugins("multiid_bench.no_such_group", "thing")
        {}
    """
    found: dict[str, InstalledPlugin] = {}
    for ep in entry_points(group=group):
        dist = getattr(ep, "dist", None)
        item = InstalledPlugin(ep.name, ep.value, getattr(dist, "name", None) or "(unknown package)",
                               getattr(dist, "version", None) or "(unknown version)")
        if ep.name in found and found[ep.name].target != item.target:
            raise ConfigError(f"{kind} plug-in {ep.name!r} is declared twice ({found[ep.name].identity}: "
                              f"{found[ep.name].target}; {item.identity}: {item.target}); uninstall one")
        found[ep.name] = item
    return dict(sorted(found.items()))


def resolve_plugin(installed: InstalledPlugin) -> Any:
    """Import the plug-in's target; a callable that is not already the expected object is the caller's to call.

    Raises:
        ImportError / AttributeError: the target does not exist (the package is broken).
    """
    module_name, _, attr = installed.target.partition(":")
    obj: Any = import_module(module_name)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def plugin_instance(installed: InstalledPlugin, expected: type, kind: str) -> Any:
    """The plug-in object of type ``expected``: the target itself, or what a factory target returns.

    Raises:
        ConfigError: the target gives something else (``kind`` names the plug-in group in the message).
    """
    obj = resolve_plugin(installed)
    if not isinstance(obj, expected) and callable(obj):
        obj = obj()
    if not isinstance(obj, expected):
        raise ConfigError(f"{kind} plug-in {installed.name!r} ({installed.identity}, {installed.target}) gave "
                          f"{type(obj).__name__}; it must be a {expected.__module__}.{expected.__qualname__}")
    return obj
