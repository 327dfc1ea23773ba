"""Face backends of a profile, built after a weights preflight, and the reference-crop preparation.

Preflight first: every weight file the profile needs is checked (existence only) before any model is
built, and all missing ones are reported in one ``MissingWeightsError`` (exit 3) with their target
paths and the ``mbench weights download`` command.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Sequence

from multiid_bench.errors import MissingWeightsError
from multiid_bench.runner.extract import FaceBackend

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Bench
    from multiid_bench.runner.config import RunConfig

__all__ = ["build_backends", "check_profile", "generator_bench", "prepare_refs", "preflight_profile"]

log = logging.getLogger(__name__)


def _profile_weight_ids(profile: Any) -> list[str]:
    """Weight ids of every detector and face model of ``profile`` (as the faces package declares them)."""
    import multiid_bench.faces as faces

    if hasattr(profile, "weight_ids"):
        ids = profile.weight_ids() if callable(profile.weight_ids) else profile.weight_ids
        return list(ids)
    fn = getattr(faces, "weight_ids_for", None)
    if fn is None:
        return []
    ids: list[str] = []
    for e in profile.entries:
        ids += list(fn(e.model)) + list(fn(e.detector))
    return list(dict.fromkeys(ids))


def preflight_profile(profile: Any, *, cache_dir: str | None, offline: bool | None) -> None:
    """Make sure every weight file of ``profile`` is available before any model is built.

    Offline: one MissingWeightsError lists every missing file. Online: missing files are downloaded
    (verified) first; the store raises one error listing those that could not be fetched.
    """
    from multiid_bench.weights import get_store

    ids = _profile_weight_ids(profile)
    if not ids:
        return
    # one message for every missing file (multiid_bench.weights.messages), naming --profile offline
    get_store(cache_dir, offline=offline).ensure(ids, profile=profile.name)


def check_profile(config: "RunConfig") -> Any:
    """The profile of ``config`` after its weights preflight (cheap: no model is built)."""
    from multiid_bench.faces import get_profile

    profile = get_profile(config.profile)
    preflight_profile(profile, cache_dir=config.cache_dir, offline=config.offline)
    return profile


def build_backends(config: "RunConfig", profile: Any = None) -> tuple[dict[str, Any], list[FaceBackend]]:
    """The profile's detectors (one instance per detector id, shared) and face models, on ``config.device``."""
    from multiid_bench.faces import load_detector, load_face_model

    profile = profile if profile is not None else check_profile(config)
    detectors: dict[str, Any] = {}
    backends: list[FaceBackend] = []
    for e in profile.entries:
        if e.detector not in detectors:
            detectors[e.detector] = load_detector(e.detector, device=config.device, cache_dir=config.cache_dir,
                                                  offline=config.offline)
        model = load_face_model(e.model, device=config.device, cache_dir=config.cache_dir, offline=config.offline)
        backends.append(FaceBackend(name=e.model, detector=detectors[e.detector], model=model, template=e.template,
                                ref_policy=e.ref_policy))
    info = profile.to_dict()
    info["weights"] = _manifest_hashes(_profile_weight_ids(profile), config)
    from multiid_bench.weights import get_store  # where each file came from: path, location, commit, sha256

    info["weights_provenance"] = get_store(config.cache_dir, offline=config.offline).provenance(
        _profile_weight_ids(profile))
    return info, backends


def _manifest_hashes(weight_ids: Sequence[str], config: "RunConfig") -> dict[str, str | None]:
    """``{"<weight id>/<file>": sha256}`` from the weights manifest (None where upstream publishes none)."""
    from multiid_bench.weights import get_store

    store = get_store(config.cache_dir, offline=config.offline)
    out: dict[str, str | None] = {}
    for wid in weight_ids:
        for wf in store.entry(wid).files:
            out[f"{wid}/{wf.name}"] = wf.sha256 or None
    return out


def prepare_refs(bench: "Bench", config: "RunConfig", backends: Sequence[FaceBackend] = ()) -> "Bench":
    """References as the generator saw them: tight square face crops (eval-protocol section 1.3), cached.

    The crop detector is the paper's (insightface antelopev2 SCRFD at 0.4) when its weights are present,
    else the first detector of the profile (``backends[0]``'s when given, else loaded here); the choice is
    part of the crop cache key and recorded in the cases' ``meta``. Benches already made of prepared crops
    are returned unchanged.
    """
    from multiid_bench.data.refcrop import prepare_reference_crops, reference_mode

    if reference_mode(bench) == "prepared_crops" or not bench.cases:
        return bench
    detector = _crop_detector(config, backends)
    return prepare_reference_crops(bench, detector=detector, cache_dir=config.cache_dir,
                                   batch_size=min(8, config.batch_size))


def generator_bench(bench: "Bench", config: "RunConfig", kind: str | None,
                    backends: Sequence[FaceBackend] = ()) -> "Bench":
    """The cases exactly as every generator gets them, for ``evaluate`` and ``generate`` alike.

    ``ref_source="prepared"`` (the default): references replaced by their tight face crops
    (:func:`prepare_refs`); ``raw``: as the bench gives them. OmniContext inputs (characters, objects,
    scenes) are whole images that generators take as they are. One function, so that ``generate`` then
    ``score`` gives the numbers ``evaluate`` gives.
    """
    if config.ref_source == "prepared" and kind != "omnicontext":
        return prepare_refs(bench, config, backends)
    return bench


def _crop_detector(config: "RunConfig", backends: Sequence[FaceBackend]) -> Any:
    from multiid_bench.faces import load_detector

    if config.profile == "paper":
        try:
            return load_detector("scrfd-antelopev2", device=config.device, cache_dir=config.cache_dir,
                                 offline=config.offline)
        except (MissingWeightsError, KeyError, ValueError) as e:
            log.warning("reference crops: antelopev2 detector unavailable (%s); using the profile's first detector", e)
    if backends:
        return backends[0].detector
    profile = check_profile(config)
    return load_detector(profile.entries[0].detector, device=config.device, cache_dir=config.cache_dir,
                         offline=config.offline)
