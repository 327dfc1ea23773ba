"""Per-case metrics from other packages, through the ``multiid_bench.metrics`` entry-point group.

A plug-in package declares, in its ``pyproject.toml``::

    [project.entry-points."multiid_bench.metrics"]
    brightness_gap = "my_package.metrics:GAP"

where ``GAP`` is a :class:`CaseMetricPlugin` (or a function without arguments that returns one). Every
installed metric plug-in runs with the image scorers; see :class:`CaseMetricPlugin` for where its numbers go.
The toolkit never imports a plug-in to list it (``mbench ls metrics``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from multiid_bench.entry_points import InstalledPlugin, installed_plugins, plugin_instance
from multiid_bench.errors import ConfigError
from multiid_bench.metrics.cards import CARDS

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["METRIC_GROUP", "CaseMetricPlugin", "installed_metrics", "load_metric_plugins", "metric_plugin_records"]

METRIC_GROUP = "multiid_bench.metrics"


@dataclass(frozen=True)
class CaseMetricPlugin:
    """A per-case metric from another package: one number per case from its images.

    It runs with the image scorers (CLIP, aesthetics; off with ``--no-scorers``), its value lands in each row's
    ``general`` and is aggregated like CLIP-T (IQR-trimmed mean under the paper protocol, bootstrap CI under
    strict); its version, naming the package and its version, goes into ``results.json`` ``cards`` and so into
    the comparability key. A value that cannot be computed is ``None`` (never 0).

    Attributes:
        compute: ``(generated, gt, references) -> float | None`` on RGB uint8 ``(H, W, 3)`` arrays (``gt`` is
            ``None`` for a bench without GT; ``references`` as the generator saw them).
        name: display name.
        version: the metric's own version (bump it when its numbers can move).
        higher_is_better: the ranking direction.
        definition: one line saying what it measures.

    Example:
        >>> import numpy as np
        >>> gap = CaseMetricPlugin(compute=lambda g, t, r: float(abs(g.mean() - t.mean()) / 255),
        ...                        name="brightness gap", version="1", higher_is_better=False,
        ...                        definition="|mean(generated) - mean(GT)| / 255")
        >>> gap.compute(np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8), [])
        1.0
    """

    compute: Callable[["np.ndarray", "np.ndarray | None", list["np.ndarray"]], Any]
    name: str
    version: str
    higher_is_better: bool
    definition: str


def installed_metrics() -> dict[str, InstalledPlugin]:
    """Every per-case metric declared in the ``multiid_bench.metrics`` group, by id (none imported).

    Returns:
        ``{metric id: InstalledPlugin}`` sorted by id.

    Raises:
        ConfigError: two packages declare the same id.

    Example:
        >>> isinstance(installed_metrics(), dict)
        True
    """
    return installed_plugins(METRIC_GROUP, "metric")


def load_metric_plugins() -> dict[str, tuple[CaseMetricPlugin, InstalledPlugin]]:
    """Every installed per-case metric plug-in, imported and checked.

    Returns:
        ``{metric id: (plugin, where it comes from)}``.

    Raises:
        ConfigError: an entry point that gives no :class:`CaseMetricPlugin`, or an id that a built-in metric
            card already uses.

    Example:
        >>> sorted(load_metric_plugins())  # none installed here
        []
    """
    out: dict[str, tuple[CaseMetricPlugin, InstalledPlugin]] = {}
    for metric_id, installed in installed_metrics().items():
        if metric_id in CARDS or "." in metric_id:
            raise ConfigError(f"metric plug-in {metric_id!r} ({installed.identity}) takes a built-in metric id or "
                              "has a '.'; rename its entry point")
        obj = plugin_instance(installed, CaseMetricPlugin, "metric")
        out[metric_id] = (obj, installed)
    return out


def metric_plugin_records(plugins: dict[str, tuple[CaseMetricPlugin, InstalledPlugin]]) -> dict[str, dict[str, Any]]:
    """What a run records about its metric plug-ins (``run.json`` ``metric_plugins``; versions into ``cards``).

    Example:
        >>> metric_plugin_records({})
        {}
    """
    return {mid: {"name": p.name, "version": f"{p.version} (plugin {i.identity})", "higher_is_better": p.higher_is_better,
                  "definition": p.definition, "entry_point": i.target} for mid, (p, i) in plugins.items()}
