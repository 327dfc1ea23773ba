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
from typing import TYPE_CHECKING, Any, Callable

from multiid_bench.entry_points import InstalledPlugin, installed_plugins, plugin_instance
from multiid_bench.errors import ConfigError
from multiid_bench.faces.types import FaceModelCard

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = [
    "FACE_MODEL_GROUP",
    "FaceModelPlugin",
    "PluginFaceModel",
    "installed_face_models",
    "load_plugin_face_model",
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
    return installed_plugins(FACE_MODEL_GROUP, "face model")


def plugin_face_model_plugin(name: str) -> tuple[FaceModelPlugin, InstalledPlugin] | None:
    """Import and check the plug-in called ``name``; ``None`` when no package declares it.

    Raises:
        ConfigError: the entry point does not name a :class:`FaceModelPlugin`, or it declares an unknown
            template, detector or reference policy.
    """
    installed = installed_face_models().get(name)
    if installed is None:
        return None
    obj = plugin_instance(installed, FaceModelPlugin, "face model")
    _check(name, obj, installed)
    return obj, installed


def _check(name: str, plugin: FaceModelPlugin, installed: InstalledPlugin) -> None:
    """Sizes here; the template, detector and reference policy are checked where a profile is built
    (``faces.profiles.ProfileEntry``), which is the only way a run uses a face model."""
    if plugin.crop_size <= 0 or plugin.embedding_dim <= 0:
        raise ConfigError(f"face model plug-in {name!r} ({installed.identity}): crop_size and embedding_dim must be "
                          "positive")


class PluginFaceModel:
    """A :class:`FaceModelPlugin` as the runner's ``FaceModel`` (``id``, ``card``, ``embed``), shape-checked."""

    def __init__(self, name: str, plugin: FaceModelPlugin, installed: InstalledPlugin) -> None:
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
