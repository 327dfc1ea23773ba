"""The adapter contract: one benchmark case in, one image plus a generation record out.

An adapter turns a :class:`~multiid_bench.data.case.Case` into an image and writes down exactly what the
method was given: the prompt as sent, the order of the references, the seed, every setting, and which
inputs were taken from the ground truth (face boxes, a pose map, face keypoints). The record is what makes
"evaluate model X" mean the same thing for everyone.

Two base classes:

* :class:`Adapter` is the contract (``load`` + ``generate``); oracles and folder readers subclass it.
* :class:`~multiid_bench.adapters.pipeline.PipelineAdapter` (``adapters/pipeline.py``) is for generators:
  ``build_request`` (pure) + ``run_request`` (calls an injectable ``self.pipe``).

Seeds: :func:`derive_seed` maps (global seed, case id, image index) to a 31-bit seed through SHA-256, so any
case can be regenerated alone and the result does not depend on sharding or ordering.
"""
from __future__ import annotations

import hashlib
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping, Sequence

from multiid_bench.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from multiid_bench.data.case import Case

__all__ = [
    "DEFAULT_PRESET",
    "GT_INPUTS",
    "PRESETS",
    "INTEGRATIONS",
    "STATUSES",
    "STEPS",
    "STEPS_SETTING_NAMES",
    "SUPPORT_STATUSES",
    "Adapter",
    "Capabilities",
    "Choice",
    "GenerationRecord",
    "GenerationResult",
    "derive_seed",
    "jsonable",
    "presets_from",
    "scale_boxes",
]

log = logging.getLogger(__name__)

Status = Literal["ok", "not_applicable", "failed"]
STATUSES: tuple[str, ...] = ("ok", "not_applicable", "failed")
SupportStatus = Literal["tested-in-ci", "best-effort"]
SUPPORT_STATUSES: tuple[str, ...] = ("tested-in-ci", "best-effort")
Integration = Literal["builtin", "diffusers", "upstream", "worker", "api"]
INTEGRATIONS: tuple[str, ...] = ("builtin", "diffusers", "upstream", "worker", "api")
# Inputs an adapter may take from the ground truth rather than from the references and prompt.
GT_INPUTS: tuple[str, ...] = ("boxes", "pose", "keypoints", "gt_image", "gt_size")

SEED_BITS = 31  # fits every generator API (torch, numpy, upstream int32 seeds)

#: The common setting for the number of denoising steps (``-S steps=28``, ``settings={"steps": 28}``); each
#: diffusion adapter applies it under its own name (:meth:`Adapter.steps_setting`).
STEPS = "steps"
#: The names diffusion adapters give their number of denoising steps (upstream's keyword, kept per adapter).
STEPS_SETTING_NAMES: tuple[str, ...] = ("num_inference_steps", "num_steps")

# Setting presets of the baselines: "paper" reproduces what the WithAnyone paper ran (subsets, checkpoint,
# settings, as far as the paper and the upstream defaults say), "upstream" uses the upstream defaults.
PRESETS: tuple[str, ...] = ("paper", "upstream")
DEFAULT_PRESET = "paper"


@dataclass(frozen=True)
class Choice:
    """One preset value and where it comes from (paper section, upstream file at the pinned commit...)."""

    value: Any
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": jsonable(self.value), "source": self.source}


def presets_from(paper: Mapping[str, Any], upstream: Mapping[str, Any]) -> dict[str, dict[str, Choice]]:
    """Build ``Capabilities.presets`` from ``{key: (value, source)}`` per preset.

    The paper (App. F.1) ran every baseline "with official implementations and checkpoints ... with default
    settings", so a key listed only under ``upstream`` is also the paper's choice, with that source.

    Example:
        >>> p = presets_from({"multi_id": ("single-only", "paper Sec. 6")}, {"multi_id": ("stitch", "ours"),
        ...                  "steps": (28, "model card")})
        >>> p["paper"]["steps"].value, p["paper"]["multi_id"].value, p["upstream"]["multi_id"].value
        (28, 'single-only', 'stitch')
    """
    up = {k: Choice(v, src) for k, (v, src) in upstream.items()}
    pa = {k: Choice(c.value, f"{c.source} (paper App. F.1: baselines run with default settings)")
          for k, c in up.items()}
    pa.update({k: Choice(v, src) for k, (v, src) in paper.items()})
    return {"paper": pa, "upstream": up}


def derive_seed(global_seed: int, case_id: str, index: int = 0) -> int:
    """Per-case seed: the first 8 bytes of SHA-256 of ``"{global_seed}:{case_id}:{index}"`` mod 2**31.

    Independent of case order, shard count and world size, so one case can be regenerated on its own.

    Example:
        >>> derive_seed(0, "p1_0001") == derive_seed(0, "p1_0001")
        True
        >>> derive_seed(0, "p1_0001") != derive_seed(1, "p1_0001")
        True
        >>> 0 <= derive_seed(42, "p2_0007", 3) < 2**31
        True
    """
    digest = hashlib.sha256(f"{int(global_seed)}:{case_id}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % (2**SEED_BITS)


def scale_boxes(
    boxes: Sequence[Sequence[float]], src_size: tuple[int, int], dst_size: tuple[int, int]
) -> tuple[tuple[float, float, float, float], ...]:
    """Rescale ``(x1, y1, x2, y2)`` boxes from a ``src_size`` (W, H) image to a ``dst_size`` (W, H) one.

    Each axis is scaled on its own (the output may have another aspect ratio than the GT), then clipped
    to the destination canvas.

    Example:
        >>> scale_boxes([(10, 20, 110, 220)], (1000, 1000), (500, 500))
        ((5.0, 10.0, 55.0, 110.0),)
    """
    sw, sh = src_size
    dw, dh = dst_size
    if sw <= 0 or sh <= 0:
        raise ConfigError(f"cannot scale boxes from an image of size {src_size}; width and height must be > 0")
    fx, fy = dw / sw, dh / sh
    out = []
    for x1, y1, x2, y2 in boxes:
        out.append(
            (
                min(max(x1 * fx, 0.0), float(dw)),
                min(max(y1 * fy, 0.0), float(dh)),
                min(max(x2 * fx, 0.0), float(dw)),
                min(max(y2 * fy, 0.0), float(dh)),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class Capabilities:
    """What a method can take and what it needs, declared as data (read by ``mbench ls models``).

    Attributes:
        max_ids: most identities one call can take; cases with more are "not applicable".
        needs_boxes: requires one face box per reference (taken from the GT, scaled to the output).
        needs_pose_image: requires a pose / control map (derived from the GT image).
        uses_face_kps: uses 5-point face keypoints (from a reference or the GT).
        face_references_only: takes face references only (ID embedding / face encoder): OmniContext tasks
            whose inputs include objects or scenes are "not applicable" (as in the paper's Table 1b).
        seed_supported: the method honours a seed (False for APIs such as GPT image).
        native_res: (W, H) the method's default output size.
        prompt_template: how references are named in the prompt; ``{prompt}`` is the case prompt.
        licence: code / weights licence summary.
        pip_extra: the ``multiid-bench[...]`` extra to install, or None.
        support_status: ``tested-in-ci`` (runs end to end in CI) or ``best-effort`` (request building
            tested against a fake pipeline; the model itself not run in CI).
        integration: ``builtin``, ``diffusers`` (native pipeline), ``upstream`` (repo code importable in
            this environment), ``worker`` (subprocess in its own environment) or ``api``.
        upstream_repo / upstream_revision: the code this adapter follows, pinned.
        weight_ids: hub ids or weight-store ids of every checkpoint used.
        gt_derived_inputs: subset of :data:`GT_INPUTS` this method receives by default.
        defaults: default generation settings (steps, guidance, size...); overridable per run.
        description: one line for listings.
        presets: ``{"paper"|"upstream": {setting: Choice(value, source)}}``; applied over ``defaults``
            (``preset`` setting, default ``"paper"``), before the user's own settings.
    """

    max_ids: int
    native_res: tuple[int, int]
    licence: str
    support_status: SupportStatus = "best-effort"
    integration: Integration = "builtin"
    needs_boxes: bool = False
    needs_pose_image: bool = False
    uses_face_kps: bool = False
    face_references_only: bool = False
    seed_supported: bool = True
    prompt_template: str = "{prompt}"
    pip_extra: str | None = None
    upstream_repo: str | None = None
    upstream_revision: str | None = None
    weight_ids: tuple[str, ...] = ()
    gt_derived_inputs: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""
    presets: Mapping[str, Mapping[str, Choice]] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not 1 <= self.max_ids <= 16:
            raise ConfigError(f"Capabilities.max_ids must be 1-16, got {self.max_ids}")
        if self.support_status not in SUPPORT_STATUSES:
            raise ConfigError(f"Capabilities.support_status must be one of {SUPPORT_STATUSES}, got {self.support_status!r}")
        if self.integration not in INTEGRATIONS:
            raise ConfigError(f"Capabilities.integration must be one of {INTEGRATIONS}, got {self.integration!r}")
        bad = [g for g in self.gt_derived_inputs if g not in GT_INPUTS]
        if bad:
            raise ConfigError(f"Capabilities.gt_derived_inputs has unknown entries {bad}; allowed: {GT_INPUTS}")
        if "{prompt}" not in self.prompt_template:
            raise ConfigError("Capabilities.prompt_template must contain '{prompt}'")
        object.__setattr__(self, "native_res", tuple(int(v) for v in self.native_res))
        object.__setattr__(self, "weight_ids", tuple(self.weight_ids))
        object.__setattr__(self, "gt_derived_inputs", tuple(self.gt_derived_inputs))
        if not isinstance(self.defaults, MappingProxyType):
            object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        if self.presets:
            if set(self.presets) != set(PRESETS):
                raise ConfigError(f"Capabilities.presets must define exactly {PRESETS}, got {sorted(self.presets)}")
            for pname, choices in self.presets.items():
                bad = sorted(set(choices) - set(self.defaults))
                if bad:
                    raise ConfigError(f"Capabilities.presets[{pname!r}] sets unknown settings {bad}")
            object.__setattr__(self, "presets", MappingProxyType(
                {k: MappingProxyType(dict(v)) for k, v in self.presets.items()}))

    def resolved_defaults(self, preset: str | None = DEFAULT_PRESET) -> dict[str, Any]:
        """The defaults with ``preset`` applied (what an adapter built with no settings uses)."""
        out = dict(self.defaults)
        if self.presets:
            name = preset or DEFAULT_PRESET
            if name not in self.presets:
                raise ConfigError(f"unknown preset {name!r}; choose one of {PRESETS}")
            out.update({k: c.value for k, c in self.presets[name].items()})
            out["preset"] = name
        return out

    @property
    def multi_id(self) -> bool:
        return self.max_ids > 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_ids": self.max_ids,
            "native_res": list(self.native_res),
            "licence": self.licence,
            "support_status": self.support_status,
            "integration": self.integration,
            "needs_boxes": self.needs_boxes,
            "needs_pose_image": self.needs_pose_image,
            "uses_face_kps": self.uses_face_kps,
            "face_references_only": self.face_references_only,
            "seed_supported": self.seed_supported,
            "prompt_template": self.prompt_template,
            "pip_extra": self.pip_extra,
            "upstream_repo": self.upstream_repo,
            "upstream_revision": self.upstream_revision,
            "weight_ids": list(self.weight_ids),
            "gt_derived_inputs": list(self.gt_derived_inputs),
            "defaults": jsonable(self.resolved_defaults()),
            "description": self.description,
            "presets": {p: {k: c.to_dict() for k, c in ch.items()} for p, ch in self.presets.items()},
        }


@dataclass(frozen=True)
class GenerationRecord:
    """What one generation was given and how; written as one JSONL row by ``mbench generate``.

    Attributes:
        adapter / adapter_version: which adapter (and version of its request building) made it.
        case_id: the case.
        seed: the per-case seed (see :func:`derive_seed`); recorded even when not applied.
        seed_applied: whether the method actually used it (False for seedless APIs).
        settings: every resolved setting (steps, guidance, size, variant, ...).
        prompt: the prompt exactly as sent, template applied.
        reference_order: indices into ``case.refs`` in the order they were passed.
        gt_derived_inputs: what was taken from the ground truth (``"boxes"``, ``"pose"``, ...).
        elapsed_s: wall time of the call.
        requested_size / output_size: (W, H) asked for and (W, H) returned, before any resizing.
        extra: adapter-specific facts (API model string and date, moderation message, ...). Never secrets.
    """

    adapter: str
    adapter_version: str
    case_id: str
    seed: int
    settings: Mapping[str, Any] = field(default_factory=dict)
    prompt: str = ""
    reference_order: tuple[int, ...] = ()
    gt_derived_inputs: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    seed_applied: bool = True
    requested_size: tuple[int, int] | None = None
    output_size: tuple[int, int] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "adapter": self.adapter,
            "adapter_version": self.adapter_version,
            "case_id": self.case_id,
            "seed": int(self.seed),
            "seed_applied": bool(self.seed_applied),
            "settings": jsonable(dict(self.settings)),
            "prompt": self.prompt,
            "reference_order": list(self.reference_order),
            "gt_derived_inputs": list(self.gt_derived_inputs),
            "elapsed_s": round(float(self.elapsed_s), 4),
            "requested_size": list(self.requested_size) if self.requested_size else None,
            "output_size": list(self.output_size) if self.output_size else None,
            "extra": jsonable(dict(self.extra)),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GenerationRecord":
        return cls(
            adapter=str(d["adapter"]),
            adapter_version=str(d.get("adapter_version", "")),
            case_id=str(d["case_id"]),
            seed=int(d.get("seed", 0)),
            settings=dict(d.get("settings") or {}),
            prompt=str(d.get("prompt", "")),
            reference_order=tuple(int(i) for i in d.get("reference_order") or ()),
            gt_derived_inputs=tuple(d.get("gt_derived_inputs") or ()),
            elapsed_s=float(d.get("elapsed_s", 0.0)),
            seed_applied=bool(d.get("seed_applied", True)),
            requested_size=tuple(d["requested_size"]) if d.get("requested_size") else None,  # type: ignore[arg-type]
            output_size=tuple(d["output_size"]) if d.get("output_size") else None,  # type: ignore[arg-type]
            extra=dict(d.get("extra") or {}),
        )


@dataclass(frozen=True)
class GenerationResult:
    """An image (``None`` unless ``status == "ok"``), its record, and why it is missing if it is."""

    image: "Image.Image | None"
    record: GenerationRecord
    status: Status = "ok"
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ConfigError(f"GenerationResult.status must be one of {STATUSES}, got {self.status!r}")
        if self.status == "ok" and self.image is None:
            raise ConfigError(f"case {self.record.case_id!r}: status 'ok' needs an image")
        if self.status != "ok" and not self.reason:
            raise ConfigError(f"case {self.record.case_id!r}: status {self.status!r} needs a reason")

    def to_row(self, image_file: str | None = None) -> dict[str, Any]:
        """The JSONL row ``mbench generate`` writes: the record plus status, reason and image file."""
        row = self.record.to_dict()
        row.update({"status": self.status, "reason": self.reason, "image": image_file})
        return row


class Adapter(ABC):
    """Base of every adapter. Subclasses set ``name``, ``version``, ``capabilities``.

    Contract:
        * ``__init__(**settings)`` is cheap (no heavy imports, no weights); settings override
          ``capabilities.defaults`` and unknown keys raise :class:`ConfigError`.
        * ``load(device)`` does the heavy imports and loads weights; missing extras raise
          ``MissingDependencyError`` and missing weights ``MissingWeightsError`` (exit 3) before any GPU work.
        * ``generate(case, seed)`` returns a :class:`GenerationResult`; per-case problems (upstream
          exception, refusal, timeout) are a ``failed`` result, never an exception, so a run continues.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1.0"
    capabilities: ClassVar[Capabilities]

    def __init__(self, **settings: Any) -> None:
        settings = self.canonical_settings(settings)
        caps = self.capabilities
        allowed = set(caps.defaults) | ({"preset"} if caps.presets else set())
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise ConfigError(
                f"adapter {self.name!r}: unknown setting(s) {unknown}; allowed: {sorted(allowed) or 'none'}"
            )
        preset = settings.get("preset", DEFAULT_PRESET)
        if caps.presets and preset not in caps.presets:
            raise ConfigError(f"adapter {self.name!r}: unknown preset {preset!r}; choose one of {PRESETS}")
        defaults = caps.resolved_defaults(preset)
        defaults.update(settings)
        self.settings: dict[str, Any] = defaults
        self.device: str | None = None

    @classmethod
    def steps_setting(cls) -> str | None:
        """This adapter's own name for its number of denoising steps, or ``None`` when it has none.

        The one name of :data:`STEPS_SETTING_NAMES` among its defaults; an adapter with another name overrides this.
        """
        found = [k for k in STEPS_SETTING_NAMES if k in cls.capabilities.defaults]
        return found[0] if len(found) == 1 else None

    @classmethod
    def canonical_settings(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        """``settings`` with the common ``steps`` applied under this adapter's own name (said on the console).

        Why: every diffusion method names its step count differently (``num_inference_steps``, ``num_steps``);
        ``-S steps=28`` means the same for all of them, and what is recorded (generation rows, the run's
        settings and fingerprint) is the adapter's own name, so ``steps=28`` and ``num_steps=28`` are one run.

        Raises:
            ConfigError: ``steps`` for an adapter without denoising steps, or ``steps`` and the adapter's own
                name given with different values.
        """
        out = dict(settings)
        if STEPS not in out:
            return out
        own = cls.steps_setting()
        if own is None:
            raise ConfigError(f"adapter {cls.name!r} has no denoising steps, so the common setting 'steps' does not "
                              "apply to it; drop -S steps=...")
        value = out.pop(STEPS)
        if own in out and out[own] != value:
            raise ConfigError(f"adapter {cls.name!r}: steps={value!r} and {own}={out[own]!r} disagree; give one of them")
        out[own] = value
        log.warning("adapter %s: steps=%r applied as its own setting %s=%r", cls.name, value, own, value)
        return out

    def load(self, device: str = "cpu") -> None:
        """Load weights onto ``device``. The default has nothing to load."""
        self.device = device

    @abstractmethod
    def generate(self, case: "Case", seed: int) -> GenerationResult:
        """Make the image for ``case`` with ``seed``; see the class docstring for the failure contract."""

    # ---- helpers shared by all adapters -------------------------------------------------------
    def not_applicable_reason(self, case: "Case") -> str | None:
        """Why this method cannot run ``case`` (too many identities, missing GT input), or None."""
        caps = self.capabilities
        n = len(case.refs)
        if n > caps.max_ids:
            kind = "a single-identity method" if caps.max_ids == 1 else f"supports at most {caps.max_ids} identities"
            return f"{self.name} is {kind}; case {case.id!r} has {n} identities"
        if caps.needs_boxes and len(case.boxes) != n:
            return f"{self.name} needs one GT face box per reference; case {case.id!r} has {len(case.boxes)} for {n}"
        if caps.needs_pose_image and case.gt is None:
            return f"{self.name} needs a pose map derived from the GT image; case {case.id!r} has no GT"
        task = str(case.meta.get("task_type") or "")
        if caps.face_references_only and ("object" in task or "scene" in task):
            return f"{self.name} takes face references only; case {case.id!r} ({task}) has object or scene inputs"
        return None

    def record(self, case: "Case", seed: int, **fields: Any) -> GenerationRecord:
        """A record pre-filled with this adapter's identity and settings."""
        fields.setdefault("settings", dict(self.settings))
        fields.setdefault("seed_applied", self.capabilities.seed_supported)
        return GenerationRecord(adapter=self.name, adapter_version=self.version, case_id=case.id, seed=seed, **fields)

    def skipped(self, case: "Case", seed: int, reason: str) -> GenerationResult:
        return GenerationResult(None, self.record(case, seed, seed_applied=False), "not_applicable", reason)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "settings": jsonable(self.settings),
                "capabilities": self.capabilities.to_dict()}


def jsonable(value: Any) -> Any:
    """Settings made JSON-safe (tuples -> lists, paths -> str, mappings -> dicts); also a pipeline's config
    (``model_calls``): one rule for what a run records of a model's settings."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)

