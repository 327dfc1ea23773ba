"""Face models from other packages, through the ``multiid_bench.face_models`` entry-point group.

A plug-in package declares, in its ``pyproject.toml``::

    [project.entry-points."multiid_bench.face_models"]
    myface = "my_package.faces:MY_FACE_MODEL"

where ``MY_FACE_MODEL`` is a :class:`FaceModelPlugin` (or a function without arguments that returns one, for
plug-ins that build something heavy). A run uses it by adding it to a profile: ``profile="offline+myface"``
(``--profile offline+myface``) scores with dlib *and* ``myface``. The plug-in is then:

* listed by ``mbench ls face-models`` (name, package and version, without importing the plug-in);
* recorded in the run: its card (template, crop size, similarity scale, embedding size, and a version that
  names the package and its version) is in ``results.json`` ``face_models`` and in the feature-cache key;
* part of the comparability key: the profile name says ``+myface``, and the face-model list carries the
  package version, so runs made with another version of the plug-in are never ranked together.

Why entry points: the toolkit never imports a plug-in to list it, and ``pip install`` is all a user does
(the ``multiid_bench.adapters`` group works the same way for generators). docs/api.md has a worked example.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Callable

from multiid_bench.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from multiid_bench.faces.types import FaceModelCard

__all__ = [
    "FACE_MODEL_GROUP",
    "METRIC_GROUP",
    "CaseMetricPlugin",
    "FaceModelPlugin",
    "InstalledPlugin",
    "PluginFaceModel",
    "installed_face_models",
    "installed_metrics",
    "load_metric_plugins",
    "load_plugin_face_model",
    "metric_plugin_records",
    "plugin_face_model_plugin",
]

FACE_MODEL_GROUP = "multiid_bench.face_models"


@dataclass(frozen=True)
class FaceModelPlugin:
    """A face model from another package: aligned face crops in, one embedding per crop out.

    Attributes:
        embed: ``(N, S, S, 3)`` uint8 RGB crops aligned with ``template`` at ``crop_size`` -> ``(N, D)`` floats.
        template: the alignment template: ``"arcface"``, ``"ffhq112"`` or ``"dlib"`` (``mbench ls profiles``).
        crop_size: S, the crop side the model takes.
        embedding_dim: D.
        similarity_scale: how to read its cosines (e.g. "same person > 0.35, strangers ~ 0"); shown next to
            its numbers, because a cosine means different things for different models.
        version: the model's own version (bump it when its numbers can move).
        detector: the face detector it is used with (``mtcnn`` ships with the offline profile).
        ref_policy: ``"top_face"`` or ``"top_face_drop_missing"`` (faces/profiles.py).
        input_convention: one line on what ``embed`` expects (recorded).

    Example:
        >>> import numpy as np
        >>> plugin = FaceModelPlugin(embed=lambda crops: crops.reshape(len(crops), -1)[:, :8] / 255.0,
        ...                          template="arcface", crop_size=112, embedding_dim=8,
        ...                          similarity_scale="toy: pixel cosine", version="1")
        >>> plugin.embed(np.zeros((2, 112, 112, 3), np.uint8)).shape
        (2, 8)
    """

    embed: Callable[["np.ndarray"], Any]
    template: str
    crop_size: int
    embedding_dim: int
    similarity_scale: str
    version: str
    detector: str = "mtcnn"
    ref_policy: str = "top_face"
    input_convention: str = "RGB uint8 aligned crop"


@dataclass(frozen=True)
class InstalledPlugin:
    """An entry point of the group: what ``mbench ls face-models`` shows, read without importing the plug-in."""

    name: str
    target: str
    distribution: str
    distribution_version: str

    @property
    def identity(self) -> str:
        """``package==version``: what the run records and the comparability key compares."""
        return f"{self.distribution}=={self.distribution_version}"


def installed_face_models() -> dict[str, InstalledPlugin]:
    """Every face model declared in the ``multiid_bench.face_models`` group, by name (none imported).

    Returns:
        ``{name: InstalledPlugin}`` sorted by name.

    Raises:
        ConfigError: two packages declare the same name (which one would a run use?).

    Example:
        >>> isinstance(installed_face_models(), dict)
        True
    """
    return _installed(FACE_MODEL_GROUP, "face model")


def plugin_face_model_plugin(name: str) -> tuple[FaceModelPlugin, InstalledPlugin] | None:
    """Import and check the plug-in called ``name``; ``None`` when no package declares it.

    Raises:
        ConfigError: the entry point does not name a :class:`FaceModelPlugin`, or it declares an unknown
            template, detector or reference policy.
    """
    installed = installed_face_models().get(name)
    if installed is None:
        return None
    obj = _resolve(installed)
    if not isinstance(obj, FaceModelPlugin) and callable(obj):
        obj = obj()
    if not isinstance(obj, FaceModelPlugin):
        raise ConfigError(f"face model plug-in {name!r} ({installed.identity}, {installed.target}) gave "
                          f"{type(obj).__name__}; it must be a multiid_bench.plugins.FaceModelPlugin")
    _check(name, obj, installed)
    return obj, installed


def _check(name: str, plugin: FaceModelPlugin, installed: InstalledPlugin) -> None:
    from multiid_bench.faces.align import TEMPLATES
    from multiid_bench.faces.detect import DETECTORS
    from multiid_bench.faces.profiles import REF_POLICIES

    where = f"face model plug-in {name!r} ({installed.identity})"
    if plugin.template not in TEMPLATES:
        raise ConfigError(f"{where}: unknown template {plugin.template!r}; known: {TEMPLATES}")
    if plugin.detector not in DETECTORS:
        raise ConfigError(f"{where}: unknown detector {plugin.detector!r}; known: {sorted(DETECTORS)}")
    if plugin.ref_policy not in REF_POLICIES:
        raise ConfigError(f"{where}: unknown ref_policy {plugin.ref_policy!r}; known: {REF_POLICIES}")
    if plugin.crop_size <= 0 or plugin.embedding_dim <= 0:
        raise ConfigError(f"{where}: crop_size and embedding_dim must be positive")


class PluginFaceModel:
    """A :class:`FaceModelPlugin` as the runner's ``FaceModel`` (``id``, ``card``, ``embed``), shape-checked."""

    def __init__(self, name: str, plugin: FaceModelPlugin, installed: InstalledPlugin) -> None:
        from multiid_bench.faces.types import FaceModelCard

        self.id = name
        self.plugin = plugin
        self.installed = installed
        self.card: FaceModelCard = FaceModelCard(
            id=name, version=f"{plugin.version} (plugin {installed.identity})", weights_sha256="",
            template=plugin.template, crop_size=plugin.crop_size, input_convention=plugin.input_convention,
            embedding_dim=plugin.embedding_dim, cosine_scale_note=plugin.similarity_scale)

    def embed(self, crops: "np.ndarray") -> "np.ndarray":
        import numpy as np

        out = np.asarray(self.plugin.embed(crops), dtype=np.float32)
        if out.shape != (len(crops), self.plugin.embedding_dim):
            raise ConfigError(f"face model plug-in {self.id!r} ({self.installed.identity}) returned embeddings of "
                              f"shape {out.shape} for {len(crops)} crops; expected ({len(crops)}, "
                              f"{self.plugin.embedding_dim})")
        return out


def load_plugin_face_model(name: str) -> PluginFaceModel | None:
    """The plug-in face model ``name`` ready to embed, or ``None`` when no package declares it.

    Raises:
        ConfigError: see :func:`plugin_face_model_plugin`.
    """
    found = plugin_face_model_plugin(name)
    return None if found is None else PluginFaceModel(name, *found)


# ---- per-case metrics: the ``multiid_bench.metrics`` group ---------------------------------------------------
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
    return _installed(METRIC_GROUP, "metric")


def _installed(group: str, kind: str) -> dict[str, InstalledPlugin]:
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


def _resolve(installed: InstalledPlugin) -> Any:
    module_name, _, attr = installed.target.partition(":")
    obj: Any = import_module(module_name)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


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
    from multiid_bench.metrics.cards import CARDS

    out: dict[str, tuple[CaseMetricPlugin, InstalledPlugin]] = {}
    for metric_id, installed in installed_metrics().items():
        if metric_id in CARDS or "." in metric_id:
            raise ConfigError(f"metric plug-in {metric_id!r} ({installed.identity}) takes a built-in metric id or "
                              "has a '.'; rename its entry point")
        obj = _resolve(installed)
        if not isinstance(obj, CaseMetricPlugin) and callable(obj):
            obj = obj()
        if not isinstance(obj, CaseMetricPlugin):
            raise ConfigError(f"metric plug-in {metric_id!r} ({installed.identity}, {installed.target}) gave "
                              f"{type(obj).__name__}; it must be a multiid_bench.plugins.CaseMetricPlugin")
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
