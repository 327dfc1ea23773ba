"""Identity and copy-paste of one image set, without a bench: ``mb.IdentityScore`` and ``mb.score_images``.

A validation loop that wants Sim(GT), Sim(Ref), copy-paste and blending every N steps needs no bench on
disk and no run folder::

    metric = mb.IdentityScore(profile="offline")
    for batch in val_loader:
        metric.update(model(batch), batch["gt"], batch["references"])   # PIL, numpy or torch images
    numbers = metric.compute()      # {"sim_gt.dlib": ..., "copy_paste.average": ..., ...}
    metric.reset()

Why the numbers equal the bench's: each update becomes a :class:`~multiid_bench.data.case.Case` whose images
are written losslessly (PNG) to a private temporary folder, and :meth:`IdentityScore.compute` scores those
cases with the runner's own chunk scorer (:func:`multiid_bench.runner.evaluation.score_chunk`: the same
decode, padding of references, official JPEG views, detection, alignment, embedding, content-keyed feature
cache and protocols) and aggregates them with the runner's aggregation (the paper's IQR-trimmed mean). The
face models load once, on the first :meth:`~IdentityScore.compute`.

With ``log_to=("tensorboard", "wandb", "mlflow")`` every ``compute(step=N)`` also logs its dict to those
trackers (:class:`multiid_bench.leaderboard.trackers.ScoreLogger`, the one place tracker code lives), under
the names ``mbench evaluate --log-to`` uses (``<protocol>/<subset>/<metric key>``)::

    metric = mb.IdentityScore(profile="offline", log_to=("tensorboard",), log_dir="runs/exp1")
    ...
    metric.compute(step=global_step)    # returns the dict and logs it at global_step
    metric.close()                      # at the end of training
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Sequence

from multiid_bench.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Case
    from multiid_bench.leaderboard.trackers import ScoreLogger

__all__ = ["IDENTITY_METRICS", "IdentityScore", "score_images"]

#: The per-face-model metrics :meth:`IdentityScore.compute` returns (``<metric>.<face model>`` and
#: ``<metric>.average``): the paper's identity metrics and its Sim(GT)-filtered copy-paste.
IDENTITY_METRICS = ("sim_gt", "sim_ref", "copy_paste", "copy_paste_ranked", "blend_gt", "blend_ref")

ImageInput = Any
"""One image: a ``PIL.Image``, a numpy array or a ``torch.Tensor`` (HWC or CHW, uint8 or float in [0, 1])."""


@dataclass(frozen=True)
class _GivenImage:
    """The generated image of one case, as the runner's chunk scorer asks for it (``obtain``)."""

    paths: dict[str, str]

    def obtain(self, case: "Case") -> Any:
        from multiid_bench.runner.sources import Generated

        return Generated("ok", self.paths[case.id])


class IdentityScore:
    """Sim(GT), Sim(Ref), copy-paste and blending over image sets added with :meth:`update` (torchmetrics style).

    Args:
        profile: face profile: ``"paper"`` (ArcFace, AdaFace, FaceNet; needs their weights) or ``"offline"``
            (dlib; ships with the PyPI dependencies).
        protocol: which protocol :meth:`compute` reports: ``"paper"`` (the official evaluation) or
            ``"strict"`` (identity-consistent; uses ``boxes`` when given to :meth:`update`).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        cache_dir: the feature and weights cache (default: mbench's cache, shared with the bench path).
        batch_size: faces per embedding batch.
        offline: ``True`` = no downloads; ``None`` follows the environment.
        paper_pixels: ``"official"`` = the paper protocol scores the JPEG-q75 views the official pipeline
            stored (as the bench does); ``"as-given"`` = the images as they are.
        log_to: trackers that every :meth:`compute` logs to: ``"tensorboard"``, ``"wandb"``, ``"mlflow"``
            (each an optional extra: ``pip install 'multiid-bench[tensorboard]'``); empty = none.
        log_dir: TensorBoard's event folder (default: ``SummaryWriter``'s ``runs/DATE_HOST``).
        project: W&B project / MLflow experiment when no run is active yet (default ``mbench``); an active
            ``wandb.run`` / ``mlflow.active_run()`` of the training loop is logged into instead.
        run_name: the name of a tracker run opened here (default ``identity-score``).

    Raises:
        ConfigError: an unknown profile, protocol, paper_pixels value or tracker.
        MissingDependencyError: a tracker of ``log_to`` is not installed (exit code 3), before any scoring.

    Example:
        >>> metric = IdentityScore(profile="offline")
        >>> metric.update(generated, gt, [ref_a, ref_b])        # doctest: +SKIP
        >>> metric.compute()["sim_gt.average"]                   # doctest: +SKIP
        0.71
    """

    def __init__(self, profile: Literal["paper", "offline"] = "paper", *, protocol: Literal["paper", "strict"] = "paper",
                 device: str = "auto", cache_dir: str | None = None, batch_size: int = 32, offline: bool | None = None,
                 paper_pixels: Literal["official", "as-given"] = "official",
                 log_to: Sequence[Literal["tensorboard", "wandb", "mlflow"]] = (), log_dir: str | Path | None = None,
                 project: str | None = None, run_name: str | None = None) -> None:
        from multiid_bench.api import resolve_device
        from multiid_bench.faces import get_profile
        from multiid_bench.runner.config import RunConfig

        get_profile(profile)  # an unknown profile fails here, not at the first compute()
        self.logger: ScoreLogger | None = None
        """The trackers of ``log_to`` (``logger.where``: where each logs), or None."""
        if log_to:  # an unknown or missing tracker fails here, before any validation step
            from multiid_bench.leaderboard.trackers import ScoreLogger

            self.logger = ScoreLogger((log_to,) if isinstance(log_to, str) else log_to, log_dir=log_dir,
                                      project=project, run_name=run_name)
        self._computed = 0
        self.config = RunConfig(model="identity-score", bench="in-memory", protocol=protocol, profile=profile,
                                device=resolve_device(device), batch_size=batch_size, cache_dir=cache_dir,
                                offline=offline if offline is not None else (True if profile.split("+")[0] == "offline" else None),
                                paper_pixels=paper_pixels, scorers=False)
        self._backends: list[Any] | None = None
        self._extractor: Any = None
        self._general: Any = None
        self._tmp = tempfile.TemporaryDirectory(prefix="mbench-identity-")
        self._pending: list[Case] = []
        self._paths: dict[str, str] = {}
        self.rows: list[dict[str, Any]] = []
        """Per-case rows (the runner's row schema: ``scores[protocol][face model]``), in update order."""

    # ---- adding images ------------------------------------------------------------------------
    def _save(self, image: ImageInput, name: str, case_id: str) -> Path:
        from multiid_bench.model_calls import to_pil_image

        pil = to_pil_image(image, "IdentityScore.update", case_id)
        if pil is None:
            raise ConfigError(f"IdentityScore.update: case {case_id}: {name} is None; pass an image")
        path = Path(self._tmp.name) / f"{case_id}.{name}.png"
        pil.save(path, format="PNG")
        return path

    def _add(self, generated: ImageInput, gt: ImageInput | None, references: Sequence[ImageInput],
             boxes: Sequence[Sequence[float]] | None, prompt: str) -> str:
        from multiid_bench.data.case import Case, subset_for_persons

        if not isinstance(references, (list, tuple)) or not references:
            raise ConfigError("IdentityScore.update: references must be a list of 1-4 images, one per person")
        case_id = f"case{len(self.rows) + len(self._pending):06d}"
        refs = tuple(self._save(r, f"ref{j}", case_id) for j, r in enumerate(references))
        gt_path = self._save(gt, "gt", case_id) if gt is not None else None
        self._paths[case_id] = str(self._save(generated, "generated", case_id))
        self._pending.append(Case(id=case_id, subset=subset_for_persons(len(refs)), prompt=prompt, gt=gt_path,
                                  refs=refs, boxes=tuple(tuple(map(float, b)) for b in (boxes or ())),
                                  num_persons=len(refs)))
        return case_id

    def update(self, generated: ImageInput | Sequence[ImageInput], gt: ImageInput | Sequence[ImageInput] | None,
               references: Sequence[ImageInput] | Sequence[Sequence[ImageInput]], *,
               boxes: Sequence[Sequence[float]] | Sequence[Sequence[Sequence[float]]] | None = None,
               prompt: str = "") -> list[str]:
        """Add one case, or a batch of cases (``generated`` a list, or a 4-D tensor/array of several images).

        Args:
            generated: the generated image (or a batch of them).
            gt: the ground-truth photo (or one per case); ``None``: Sim(GT) and copy-paste are not computed.
            references: the reference images of the case, one per person, as the generator saw them (or one
                such list per case).
            boxes: optional GT face boxes ``(x1, y1, x2, y2)`` in GT pixels, one per person (or one list per
                case); the strict protocol uses them to tell which GT face is whom.
            prompt: the prompt (recorded in the case; not scored here).

        Returns:
            The ids given to the added cases (``case000000``, ...), the keys of :attr:`rows`.

        Raises:
            ConfigError: an input is not an image, a batch's lengths differ, or a case has no references.

        Example:
            >>> metric.update([gen_a, gen_b], [gt_a, gt_b], [[ref_a], [ref_b1, ref_b2]])  # doctest: +SKIP
        """
        batch = _as_batch(generated)
        if batch is None:
            return [self._add(generated, gt, references, boxes, prompt)]
        gts = list(gt) if gt is not None else [None] * len(batch)
        box_lists = list(boxes) if boxes is not None else [None] * len(batch)
        if not (len(gts) == len(references) == len(box_lists) == len(batch)):
            raise ConfigError(f"IdentityScore.update: a batch of {len(batch)} generated images needs as many GT images "
                              f"({len(gts)}), reference lists ({len(references)}) and box lists ({len(box_lists)})")
        return [self._add(g, t, list(r), b, prompt) for g, t, r, b in zip(batch, gts, references, box_lists)]

    # ---- scoring ------------------------------------------------------------------------------
    def _load(self) -> None:
        from multiid_bench.runner.backends import build_backends, check_profile
        from multiid_bench.runner.cache import FeatureCache, default_cache_root
        from multiid_bench.runner.extract import FeatureExtractor
        from multiid_bench.runner.image_scores import load_general_scorers

        _, self._backends = build_backends(self.config, check_profile(self.config))
        cache = FeatureCache(default_cache_root(self.config.cache_dir))
        self._extractor = FeatureExtractor(self._backends, cache, batch_size=self.config.batch_size)
        self._general = load_general_scorers(self.config)  # scorers=False: none load; rows say "disabled"

    def _score_pending(self) -> None:
        if not self._pending:
            return
        if self._backends is None:
            self._load()
        from multiid_bench.runner.evaluation import score_chunk

        source = _GivenImage(self._paths)
        step = self.config.chunk_cases
        for start in range(0, len(self._pending), step):
            self.rows.extend(score_chunk(self._pending[start:start + step], source, self._extractor, self._backends,
                                         self.config, self._general))
        self._pending.clear()

    def results(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Every aggregate, as ``results.json`` holds it: ``{protocol: {subset: {metric key: entry}}}``.

        Returns:
            Entries with value, n, statistic (IQR-trimmed mean under the paper protocol, bootstrap CI under
            strict) for both protocols and every subset present (``p1``/``p2``/``p3`` by number of references,
            and ``all``).

        Raises:
            ConfigError: nothing was added yet.
            MissingWeightsError: the profile's face-model weights are not installed (exit code 3).

        Example:
            >>> metric.results()["strict"]["all"]["sim_gt.average"]["ci95"]  # doctest: +SKIP
        """
        self._score_pending()
        if not self.rows:
            raise ConfigError("IdentityScore: nothing to compute; call update() first")
        from multiid_bench.runner.aggregate import aggregate

        assert self._backends is not None
        c = self.config
        return aggregate(self.rows, [b.name for b in self._backends], iqr_k=c.iqr_k,
                         bootstrap_resamples=c.bootstrap_resamples, bootstrap_seed=c.bootstrap_seed)

    def compute(self, subset: str = "all", *, step: int | None = None) -> dict[str, float | None]:
        """The identity metrics of every case added so far, aggregated as the paper does.

        With ``log_to`` given at construction, the dict is also logged to those trackers as
        ``<protocol>/<subset>/<metric key>`` scalars at ``step`` (``None`` values are not logged).

        Args:
            subset: ``"all"`` (default) or ``"p1"`` / ``"p2"`` / ``"p3"`` (cases with 1, 2, 3-4 references).
            step: the training step to log at (pass the loop's global step); default: how many times
                ``compute`` ran before (0, 1, ...). Ignored without ``log_to``.

        Returns:
            ``{"<metric>.<face model>": value}`` for each of :data:`IDENTITY_METRICS` and each face model of
            the profile plus ``average``, under the ``protocol`` given at construction; ``None`` where no case
            gave a value (e.g. blending on single-person cases under strict), never 0.

        Raises:
            ConfigError: nothing was added yet, or no case of ``subset``.
            MissingWeightsError: the profile's face-model weights are not installed (exit code 3).

        Example:
            >>> metric.compute()["copy_paste.average"]  # doctest: +SKIP
            -0.42
        """
        block = self.results()[self.config.protocol]
        if subset not in block:
            raise ConfigError(f"IdentityScore: no case in subset {subset!r}; present: {sorted(block)}")
        numbers = {key: entry.get("value") for key, entry in block[subset].items()
                   if key.partition(".")[0] in IDENTITY_METRICS and "." in key}
        if self.logger is not None:
            self.logger.log(numbers, self._computed if step is None else step, protocol=self.config.protocol,
                             subset=subset)
        self._computed += 1
        return numbers

    def close(self) -> None:
        """Close the trackers of ``log_to``: flush TensorBoard, finish the W&B / MLflow run opened here.

        A run the training loop opened itself stays open. Without ``log_to`` this does nothing.

        Raises:
            Nothing.

        Example:
            >>> metric.close()  # doctest: +SKIP
        """
        if self.logger is not None:
            self.logger.close()

    def reset(self) -> None:
        """Forget every case (the face models stay loaded, the feature cache stays on disk).

        Raises:
            Nothing.

        Example:
            >>> metric.reset()  # doctest: +SKIP
        """
        self._tmp.cleanup()
        self._tmp = tempfile.TemporaryDirectory(prefix="mbench-identity-")
        self._pending.clear()
        self._paths.clear()
        self.rows = []

    def __repr__(self) -> str:
        n = len(self.rows) + len(self._pending)
        return f"IdentityScore(profile={self.config.profile!r}, protocol={self.config.protocol!r}, cases={n})"


def _as_batch(generated: Any) -> list[Any] | None:
    """A list of images when ``generated`` is a batch (a list, or a 4-D array/tensor of several), else None."""
    if isinstance(generated, (list, tuple)):
        return list(generated)
    shape = getattr(generated, "shape", None)
    if shape is not None and len(shape) == 4 and shape[0] > 1:
        return [generated[i] for i in range(shape[0])]
    return None


def score_images(
    generated: ImageInput | Sequence[ImageInput], gt: ImageInput | Sequence[ImageInput] | None,
    references: Sequence[ImageInput] | Sequence[Sequence[ImageInput]], *,
    profile: Literal["paper", "offline"] = "paper", protocol: Literal["paper", "strict"] = "paper",
    device: str = "auto", cache_dir: str | None = None, offline: bool | None = None,
) -> dict[str, float | None]:
    """Sim(GT), Sim(Ref), copy-paste and blending of one case or one batch, in one call.

    Each call loads the face models again; a loop keeps one :class:`IdentityScore` instead.

    Args:
        generated: a generated image, or a batch (see :meth:`IdentityScore.update`).
        gt: its ground-truth photo (or one per case); ``None`` skips Sim(GT) and copy-paste.
        references: the references of the case (or one list per case).
        profile: ``"paper"`` or ``"offline"`` face models.
        protocol: ``"paper"`` or ``"strict"``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        cache_dir: the feature and weights cache.
        offline: ``True`` = no downloads; ``None`` follows the environment.

    Returns:
        What :meth:`IdentityScore.compute` returns.

    Raises:
        ConfigError: an input is not an image, or the batch lengths differ.
        MissingWeightsError: the profile's face-model weights are not installed.

    Example:
        >>> mb.score_images(generated, gt, [reference], profile="offline")["sim_gt.dlib"]  # doctest: +SKIP
        0.83
    """
    metric = IdentityScore(profile, protocol=protocol, device=device, cache_dir=cache_dir, offline=offline)
    metric.update(generated, gt, references)
    return metric.compute()
