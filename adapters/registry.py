"""A small generic registry: names and aliases -> objects, or lazy ``"module:attr"`` placeholders.

Built-in entries are strings, so listing names imports nothing; an entry is imported on first ``get``,
checked against ``base_cls`` and cached. Third-party packages add entries through an entry-point group.

Example:
    >>> reg = Registry("widget", entry_point_group=None)
    >>> reg.register("decoder", "json:JSONDecoder", aliases=("dec",))
    >>> reg.names()
    ['decoder']
    >>> reg.get("dec").__name__
    'JSONDecoder'
    >>> reg.get("decodr")
    Traceback (most recent call last):
    ...
    multiid_bench.errors.ConfigError: Unknown widget 'decodr'. Did you mean: decoder, dec? Available: decoder
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import threading
from typing import Any, Generic, TypeVar

from multiid_bench.errors import ConfigError, MissingDependencyError

__all__ = ["Registry"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_MAX_LISTED = 20


class Registry(Generic[T]):
    """Name -> object registry with aliases, lazy placeholders, a base-class check and freezing.

    Args:
        kind: what is registered ("adapter"), used in messages.
        base_cls: when given, every loaded class must subclass it (checked at register and load time).
        entry_point_group: ``importlib.metadata`` group scanned once, on first lookup or listing.
    """

    def __init__(self, kind: str, base_cls: type | None = None, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.base_cls = base_cls
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T | str] = {}
        self._aliases: dict[str, str] = {}
        self._origins: dict[str, str] = {}
        self._frozen = False
        self._eps_loaded = entry_point_group is None
        self._lock = threading.RLock()

    # ---- registration -------------------------------------------------------------------------
    def register(
        self, name: str, target: T | str | None = None, *, aliases: tuple[str, ...] = (), origin: str | None = None
    ) -> Any:
        """Register ``target`` (an object or a ``"module:attr"`` string) under ``name``.

        Without ``target`` this returns a class decorator.
        """
        if target is None:
            def deco(obj: T) -> T:
                self.register(name, obj, aliases=aliases, origin=origin)
                return obj

            return deco
        with self._lock:
            if self._frozen:
                raise ConfigError(f"the {self.kind} registry is frozen; register {name!r} before startup ends")
            if not name or not isinstance(name, str):
                raise ConfigError(f"{self.kind} names must be non-empty strings, got {name!r}")
            for key in (name, *aliases):
                if key in self._entries or key in self._aliases:
                    current = self._origins.get(self._aliases.get(key, key), "?")
                    raise ConfigError(
                        f"{self.kind} {key!r} is already registered (-> {current}); cannot also point it at "
                        f"{_describe(target)}"
                    )
            if isinstance(target, str):
                if ":" not in target:
                    raise ConfigError(f"lazy {self.kind} target {target!r} must look like 'package.module:attr'")
            else:
                self._check_base(name, target)
            self._entries[name] = target
            self._origins[name] = origin or _describe(target)
            for a in aliases:
                self._aliases[a] = name
        return None

    def freeze(self) -> None:
        """Make the registry read-only (after built-ins and entry points are in)."""
        with self._lock:
            self._load_entry_points()
            self._frozen = True

    @property
    def frozen(self) -> bool:
        return self._frozen

    # ---- lookup -------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Canonical names, sorted; imports nothing but entry-point metadata."""
        with self._lock:
            self._load_entry_points()
            return sorted(self._entries)

    def aliases(self) -> dict[str, str]:
        with self._lock:
            self._load_entry_points()
            return dict(self._aliases)

    def canonical(self, name: str) -> str:
        """The canonical name for ``name`` or an alias; unknown names raise with suggestions."""
        with self._lock:
            self._load_entry_points()
            if name in self._entries:
                return name
            if name in self._aliases:
                return self._aliases[name]
            raise ConfigError(self._unknown_message(name))

    def __contains__(self, name: object) -> bool:
        with self._lock:
            self._load_entry_points()
            return name in self._entries or name in self._aliases

    def is_loaded(self, name: str) -> bool:
        return not isinstance(self._entries.get(self.canonical(name)), str)

    def target(self, name: str) -> str:
        """The ``"module:attr"`` (or ``module:qualname``) behind ``name``, without importing it."""
        return self._origins[self.canonical(name)]

    def origin(self, name: str) -> str:
        """Where the entry is defined: ``file:line`` once loaded, else its lazy target."""
        key = self.canonical(name)
        obj = self._entries[key]
        if isinstance(obj, str):
            return obj
        try:
            return f"{inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]}"  # type: ignore[arg-type]
        except (TypeError, OSError):
            return self._origins[key]

    def get(self, name: str) -> T:
        """The object for ``name`` (or an alias), importing a lazy entry on first use."""
        with self._lock:
            key = self.canonical(name)
            obj = self._entries[key]
            if isinstance(obj, str):
                obj = self._materialise(key, obj)
                self._entries[key] = obj
            return obj

    # ---- internals ----------------------------------------------------------------------------
    def _materialise(self, key: str, target: str) -> T:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            missing = e.name or module_name
            raise MissingDependencyError(
                f"{self.kind} {key!r} needs module {missing!r}, which is not installed "
                f"(while importing {module_name!r}); install the package that provides it"
            ) from e
        obj: Any = module
        for part in attr.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise ConfigError(
                    f"{self.kind} {key!r} points at {target!r}, but {module_name!r} has no attribute {attr!r}"
                ) from None
        self._check_base(key, obj)
        return obj  # type: ignore[no-any-return]

    def _check_base(self, key: str, obj: Any) -> None:
        if self.base_cls is None:
            return
        if not (inspect.isclass(obj) and issubclass(obj, self.base_cls)):
            raise ConfigError(
                f"{self.kind} {key!r} -> {_describe(obj)} is not a subclass of "
                f"{self.base_cls.__module__}.{self.base_cls.__qualname__}"
            )

    def _load_entry_points(self) -> None:
        if self._eps_loaded:
            return
        self._eps_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.entry_point_group):  # type: ignore[arg-type]
            if ep.name in self._entries or ep.name in self._aliases:
                log.warning("%s %r from entry point %s ignored: the name is taken by %s",
                            self.kind, ep.name, ep.value, self._origins.get(ep.name, "an alias"))
                continue
            self._entries[ep.name] = ep.value
            self._origins[ep.name] = ep.value

    def _unknown_message(self, name: str) -> str:
        pool = sorted(self._entries) + sorted(self._aliases)
        close = difflib.get_close_matches(name, pool, n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        names = sorted(self._entries)
        listed = ", ".join(names[:_MAX_LISTED])
        more = f" ... ({len(names)} in total)" if len(names) > _MAX_LISTED else ""
        return f"Unknown {self.kind} {name!r}.{hint} Available: {listed}{more}"

    def _clear(self) -> None:
        """Tests only: drop every entry and unfreeze."""
        with self._lock:
            self._entries.clear()
            self._aliases.clear()
            self._origins.clear()
            self._frozen = False
            self._eps_loaded = self.entry_point_group is None


def _describe(obj: Any) -> str:
    if isinstance(obj, str):
        return obj
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
