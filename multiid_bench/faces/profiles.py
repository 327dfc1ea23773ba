"""Named face-pipeline profiles: for each face model, its detector, template and input convention.

``paper`` reproduces the official MultiID-Bench evaluation (eval-protocol §3, §8): ArcFace w600k_r50 on
SCRFD (buffalo_l, 640 canvas, score >= 0.45) with the ArcFace template; AdaFace IR-50 and FaceNet
(paper input: BGR, [0, 1], 112 px) on RetinaFace-R50 (native resolution, score > 0.97) with the FFHQ
template scaled to 112. ``offline`` needs no download: MTCNN (weights ship in facenet-pytorch) and dlib's
recogniser (ships in face_recognition_models) on dlib's own face chip.

``ref_policy`` says how a reference image's faces become the reference embedding:

* ``"top_face"``: the highest-scoring face; a reference with no face makes this model's Sim(Ref) and
  copy-paste for the case missing (the official ArcFace behaviour).
* ``"top_face_drop_missing"``: the highest-scoring face; references without a face are dropped (the
  official FaceNet/AdaFace behaviour; the official code crashed on a reference with several faces, we
  take the top one instead and the runner records it).

A profile is written into every result (``to_dict``), so a number always says how its faces were made.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from multiid_bench.errors import ConfigError

__all__ = ["PROFILES", "REF_POLICIES", "Profile", "ProfileEntry", "get_profile"]

REF_POLICIES = ("top_face", "top_face_drop_missing")


@dataclass(frozen=True)
class ProfileEntry:
    """One face model of a profile and how its faces are produced."""

    model: str
    detector: str
    template: str
    input_convention: str
    ref_policy: str

    def __post_init__(self) -> None:
        from multiid_bench.faces.align import TEMPLATES
        from multiid_bench.faces.detect import DETECTORS
        from multiid_bench.faces.models import face_model_spec

        face_model_spec(self.model)  # a built-in or an installed plug-in, else ConfigError naming the known ones
        if self.detector not in DETECTORS:
            raise ConfigError(f"profile entry: unknown detector {self.detector!r}; known: {sorted(DETECTORS)}.")
        if self.template not in TEMPLATES:
            raise ConfigError(f"profile entry: unknown template {self.template!r}; known: {TEMPLATES}.")
        if self.ref_policy not in REF_POLICIES:
            raise ConfigError(f"profile entry: unknown ref_policy {self.ref_policy!r}; known: {REF_POLICIES}.")

    @property
    def crop_size(self) -> int:
        """The crop size to align to (the model's own input size)."""
        from multiid_bench.faces.models import face_model_spec

        return face_model_spec(self.model).crop_size

    def weight_ids(self) -> list[str]:
        from multiid_bench.faces.detect import detector_weight_ids
        from multiid_bench.faces.models import face_model_weight_ids

        return [*detector_weight_ids(self.detector), *face_model_weight_ids(self.model)]


@dataclass(frozen=True)
class Profile:
    """A named set of :class:`ProfileEntry`; ``detectors()`` lists each detector once (detect once per image)."""

    name: str
    entries: tuple[ProfileEntry, ...]
    description: str = ""

    def models(self) -> list[str]:
        return [e.model for e in self.entries]

    def detectors(self) -> list[str]:
        return list(dict.fromkeys(e.detector for e in self.entries))

    def entry(self, model: str) -> ProfileEntry:
        for e in self.entries:
            if e.model == model:
                return e
        raise ConfigError(f"profile {self.name!r} has no face model {model!r}; it has {self.models()}.")

    def weight_ids(self) -> list[str]:
        """Every weight id the profile needs, for one preflight before any model loads."""
        return list(dict.fromkeys(w for e in self.entries for w in e.weight_ids()))

    def to_dict(self) -> dict[str, Any]:
        from multiid_bench.faces.detect import DETECTORS

        return {
            "name": self.name,
            "description": self.description,
            "entries": [asdict(e) for e in self.entries],
            "detector_config": {d: dict(DETECTORS[d].defaults) for d in self.detectors()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls(name=data["name"], description=data.get("description", ""),
                   entries=tuple(ProfileEntry(**e) for e in data["entries"]))


def _paper() -> Profile:
    return Profile(
        name="paper",
        description="Official MultiID-Bench face pipelines (arcface/SCRFD; adaface & facenet/RetinaFace+FFHQ-112).",
        entries=(
            ProfileEntry("arcface", "scrfd", "arcface", "RGB (x-127.5)/127.5", "top_face"),
            ProfileEntry("adaface", "retinaface", "ffhq112", "BGR (x/255-0.5)/0.5", "top_face_drop_missing"),
            ProfileEntry("facenet", "retinaface", "ffhq112", "BGR x/255, 112 px", "top_face_drop_missing"),
        ),
    )


def _offline() -> Profile:
    return Profile(
        name="offline",
        description="No downloads: MTCNN (facenet-pytorch) + dlib ResNet (face_recognition_models). Not paper-comparable.",
        entries=(ProfileEntry("dlib", "mtcnn", "dlib", "RGB uint8 dlib face chip (150 px)", "top_face"),),
    )


PROFILES = {"paper": _paper, "offline": _offline}


def get_profile(name: Literal["paper", "offline"] | str) -> Profile:
    """The profile called ``name``: ``"paper"``, ``"offline"``, or one of them plus face-model plug-ins
    (``"offline+myface"``: each plug-in with its own detector, template and reference policy; multiid_bench.faces.plugins)."""
    base, *extra = name.split("+")
    if base not in PROFILES:
        raise ConfigError(f"unknown face profile {name!r}; choose one of {sorted(PROFILES)} "
                          "(optionally +<face-model plug-in>, e.g. offline+myface).")
    profile = PROFILES[base]()
    if not extra:
        return profile
    from multiid_bench.faces.plugins import plugin_face_model_plugin

    entries = list(profile.entries)
    for plug in extra:
        found = plugin_face_model_plugin(plug)
        if found is None or plug in profile.models():
            raise ConfigError(f"profile {name!r}: {plug!r} is no installed face-model plug-in (entry-point group "
                              "multiid_bench.face_models; `mbench ls face-models` lists them)")
        p, installed = found
        entries.append(ProfileEntry(plug, p.detector, p.template, f"{p.input_convention} (plugin {installed.identity})",
                                    p.ref_policy))
    return Profile(name=name, entries=tuple(entries),
                   description=f"{profile.description} Plus face-model plug-in(s): {', '.join(extra)}.")
