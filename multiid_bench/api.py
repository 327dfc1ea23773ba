"""The Python API: what ``mbench evaluate / score / generate`` do, as functions (the CLI is a thin layer).

::

    import multiid_bench as mb

    def my_generate(case):                  # case: CaseInput
        return my_pipeline(case.prompt, case.references, seed=case.seed)   # -> PIL.Image

    result = mb.evaluate(my_generate, bench="demo", profile="offline", out="runs/mine")
    result.summary          # what results.json holds
    result.cases_frame()    # pandas DataFrame: one row per case and face model, every metric

``model=`` is a callable, an adapter name (``"uno"``) or an :class:`~multiid_bench.adapters.base.Adapter`.
Device choice (``"auto"``), the offline switch and adapter wiring live here, once.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping, Sequence

from multiid_bench.errors import EXIT_OK, EXIT_PARTIAL, ConfigError
from multiid_bench.runner import run_folder as rf
from multiid_bench.runner.config import Protocol, RefSource

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from PIL import Image

    from multiid_bench.adapters.base import Adapter, GenerationResult
    from multiid_bench.data.case import Case
    from multiid_bench.runner.sources import GenerateSummary

__all__ = ["CaseInput", "Device", "PaperPixels", "ProfileName", "Run", "evaluate", "generate", "load_run",
           "resolve_device", "score"]

ProfileName = Literal["paper", "offline"]
"""Face profiles: ``paper`` (ArcFace, AdaFace, FaceNet: the published weights) or ``offline`` (dlib, no download)."""
Device = Literal["auto", "cpu", "cuda"]
"""``auto`` = CUDA when available; any torch device string (``"cuda:1"``) is accepted too."""
PaperPixels = Literal["official", "as-given"]
"""What the paper protocol scores: the official pipeline's JPEG-q75 bytes, or the files as they are."""

DEFAULT_BENCH = "WithAnyone/MultiID-Bench"


@dataclass
class CaseInput:
    """What a generator function gets for one case.

    ``references`` are the reference images as the paper's generator saw them (tight face crops with
    ``ref_source="prepared"``, the default). Ground-truth-derived inputs (``boxes``, ``gt_image``) exist only
    when asked for with ``gt_inputs=`` and are then recorded as GT-derived in the generation record.

    Attributes:
        case_id: the bench's case id.
        prompt: the text prompt.
        subset: ``p1``, ``p2`` or ``p3``.
        num_persons: identities in the case (one reference each).
        seed: this case's seed (derived from the global seed and the case id).
        reference_paths: the reference files (``references`` opens them).

    Example:
        >>> def my_generate(case):  # doctest: +SKIP
        ...     return pipe(case.prompt, case.references, seed=case.seed)
    """

    case_id: str
    prompt: str
    subset: str
    num_persons: int
    seed: int
    reference_paths: tuple[Path, ...]
    _case: "Case" = field(repr=False)
    _gt_inputs: tuple[str, ...] = field(default=(), repr=False)

    @property
    def references(self) -> list["Image.Image"]:
        from PIL import Image

        return [Image.open(p).convert("RGB") for p in self.reference_paths]

    def _gt(self, name: str) -> None:
        if name not in self._gt_inputs:
            raise ConfigError(f"case {self.case_id}: {name} is derived from the ground truth; pass "
                              f"gt_inputs=({name!r},) to mb.evaluate to use it (it is then recorded as GT-derived)")

    @property
    def boxes(self) -> tuple[tuple[float, float, float, float], ...]:
        """GT face boxes (x1, y1, x2, y2) in GT pixels, one per reference (only with ``gt_inputs=("boxes",)``)."""
        self._gt("boxes")
        return tuple(self._case.boxes)  # type: ignore[arg-type]

    @property
    def gt_image(self) -> "Image.Image":
        self._gt("gt_image")
        from PIL import Image

        return Image.open(self._case.gt).convert("RGB")  # type: ignore[arg-type]


def _function_adapter(fn: Callable[[CaseInput], Any], name: str | None, gt_inputs: Sequence[str]) -> "Adapter":
    """Wrap ``fn(case) -> PIL.Image`` (``None`` = not applicable to this case) as an adapter."""
    from multiid_bench.adapters.base import Adapter, Capabilities, GenerationResult
    from multiid_bench.model_calls import to_pil_image

    label = name or getattr(fn, "__name__", None) or type(fn).__name__
    caps = Capabilities(max_ids=4, native_res=(1024, 1024), licence="user code", integration="builtin",
                        gt_derived_inputs=tuple(gt_inputs), description=f"Python function {label}")

    class FunctionAdapter(Adapter):
        capabilities = caps

        def generate(self, case: "Case", seed: int) -> "GenerationResult":
            t0 = time.perf_counter()
            image = fn(CaseInput(case.id, case.prompt, case.subset, case.num_persons, seed, tuple(case.refs), case,
                                 tuple(gt_inputs)))
            rec = dict(prompt=case.prompt, reference_order=tuple(range(len(case.refs))),
                       gt_derived_inputs=tuple(gt_inputs), elapsed_s=time.perf_counter() - t0)
            if image is None:
                return GenerationResult(None, self.record(case, seed, **rec), "not_applicable", f"{label} returned None")
            image = to_pil_image(image, label, case.id)  # PIL, numpy, torch, .images (model_calls.py)
            return GenerationResult(image, self.record(case, seed, output_size=image.size, **rec), "ok", None)

    FunctionAdapter.name, FunctionAdapter.version = label, "user"
    return FunctionAdapter()


def _adapter(model: Any, settings: Mapping[str, Any], name: str | None, gt_inputs: Sequence[str],
             ref_pad_ratio: float) -> "Adapter":
    from multiid_bench.adapters import adapter_class
    from multiid_bench.adapters.base import Adapter
    from multiid_bench.model_calls import is_diffusers_pipeline, pipeline_adapter

    if isinstance(model, Adapter):
        return model
    if isinstance(model, str):
        cls = adapter_class(model)
        settings = dict(settings)
        if "ref_pad_ratio" in cls.capabilities.defaults and "ref_pad_ratio" not in settings:
            settings["ref_pad_ratio"] = ref_pad_ratio  # oracles pad as scoring does
        return cls(**settings)
    if is_diffusers_pipeline(model):
        return pipeline_adapter(model, name, settings)
    if callable(model):
        return _function_adapter(model, name, gt_inputs)
    raise ConfigError(f"model must be a callable, an adapter name or an Adapter, got {type(model).__name__}")


def resolve_device(device: Device | str = "auto", integration: str | None = None) -> str:
    """The torch device a run uses.

    Args:
        device: ``"auto"``: CUDA when available (``cuda:$LOCAL_RANK`` under torchrun/accelerate), else CPU;
            anything else is returned as given.
        integration: the adapter's integration kind; ``builtin`` and ``api`` adapters need no GPU (``cpu``).

    Returns:
        A device string such as ``"cpu"``, ``"cuda"`` or ``"cuda:1"``.

    Raises:
        Nothing of its own (torch is imported only for ``"auto"``).

    Example:
        >>> resolve_device("cuda:1")
        'cuda:1'
    """
    if device != "auto":
        return device
    if integration in ("builtin", "api"):
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    local = os.environ.get("LOCAL_RANK")
    return f"cuda:{int(local) % max(torch.cuda.device_count(), 1)}" if local and local.isdigit() else "cuda"


def _offline(offline: bool | None, profile: str | None = None) -> bool | None:
    """``None`` follows the environment, except that the offline profile promises no downloads. When
    offline, every library in the process (ours, huggingface_hub, diffusers, transformers) is told so."""
    if offline is None and profile is not None and profile.split("+")[0] == "offline":
        offline = True
    if offline:
        os.environ["MBENCH_OFFLINE"] = "1"
        os.environ["HF_HUB_OFFLINE"] = "1"
    return offline


def _shard(shard: str | Any | None) -> Any:
    from multiid_bench.runner.shard import Shard, parse_shard, resolve_shard

    return resolve_shard(parse_shard(shard) if isinstance(shard, str) else (shard or Shard()))


def _subsets(subsets: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if subsets is None:
        return None
    items = subsets.split(",") if isinstance(subsets, str) else list(subsets)
    return tuple(s.strip() for s in items if s.strip()) or None


@dataclass
class Run:
    """A run folder: ``summary`` is its ``results.json`` (``None`` while other shards are still running).

    Attributes:
        path: the run folder.
        summary: the parsed ``results.json``, or ``None`` while other shards are still running.
        rows_written: case rows this process wrote (0 for a loaded run).

    Example:
        >>> run = mb.load_run("runs/mine")  # doctest: +SKIP
        >>> run                             # doctest: +SKIP
        Run(model='my_generate', bench='demo', profile='offline', protocol='paper', cases=17: 17 ok, ...)
    """

    path: Path
    summary: dict[str, Any] | None
    rows_written: int = 0

    @property
    def complete(self) -> bool:
        return self.summary is not None

    @property
    def exit_code(self) -> int:
        """4 when some cases failed (results are written anyway), else 0."""
        return EXIT_PARTIAL if self.summary and self.summary["counts"]["failed"] else EXIT_OK

    def __repr__(self) -> str:
        from multiid_bench.run_views import run_label

        return run_label(self.path, self.summary, self.rows_written)

    def _results(self) -> dict[str, Any]:
        if self.summary is None:
            raise ConfigError(f"{self.path}: results.json is not written yet (other shards are still running); "
                              "cases_frame() reads the rows written so far")
        return self.summary

    def metrics(self, protocol: Protocol | None = None, subset: str = "all") -> "pd.DataFrame":
        """Every aggregated metric of ``protocol`` (default: the headline one) on ``subset`` as a flat table.

        Args:
            protocol: ``"paper"`` or ``"strict"``; ``None`` = the run's headline protocol.
            subset: ``"p1"``, ``"p2"``, ``"p3"`` or ``"all"``.

        Returns:
            A DataFrame: metric, face_model, value, ci_lo, ci_hi, n, statistic (read from ``results.json``).

        Raises:
            ConfigError: the run is incomplete, or has no such protocol or subset.

        Example:
            >>> mb.load_run("runs/mine").metrics(subset="p1")  # doctest: +SKIP
        """
        from multiid_bench.run_views import metrics_frame

        return metrics_frame(self._results(), protocol, subset)

    def headline(self, protocol: Protocol | None = None, subset: str = "all") -> dict[str, Any]:
        """The numbers a paper table shows (Sim(GT), Sim(Ref), CP, CLIP-I, CLIP-T, Aes) and what they were
        measured on, as a JSON-ready dict (what ``mbench evaluate/score --json`` prints).

        Args:
            protocol: ``"paper"`` or ``"strict"``; ``None`` = the run's headline protocol.
            subset: ``"p1"``, ``"p2"``, ``"p3"`` or ``"all"``.

        Returns:
            See :func:`multiid_bench.run_views.headline`.

        Raises:
            ConfigError: the run is incomplete, or has no such protocol or subset.

        Example:
            >>> mb.load_run("runs/mine").headline()["metrics"]["sim_gt"]["value"]  # doctest: +SKIP
        """
        from multiid_bench.run_views import headline

        return headline(self._results(), self.path, protocol, subset)

    def rows(self) -> list[dict[str, Any]]:
        """Every case row (all shards merged, plan order).

        Returns:
            The rows as ``cases*.jsonl`` holds them (docs/results.md), the last row per case id.

        Raises:
            MissingDataError: the folder has no rows.

        Example:
            >>> [r["status"] for r in mb.load_run("runs/mine").rows()]  # doctest: +SKIP
            ['ok', 'ok', 'failed']
        """
        return rf.read_rows(self.path)

    def cases_frame(self, protocol: Protocol | None = None) -> "pd.DataFrame":
        """One row per case and face model: status, reason and every per-case metric of ``protocol``, plus the
        image-level metrics (``clip_i``, ``clip_t``, ...).

        Args:
            protocol: ``"paper"`` or ``"strict"``; ``None`` = the run's headline protocol.

        Returns:
            A DataFrame with case_id, subset, num_persons, status, reason, protocol, face_model and the metrics.

        Raises:
            MissingDataError: the folder has no rows.

        Example:
            >>> mb.load_run("runs/mine").cases_frame("strict").sim_gt.mean()  # doctest: +SKIP
        """
        import pandas as pd

        protocol = protocol or (self.summary or {}).get("protocol", "paper")
        records = []
        for row in self.rows():
            base = {k: row.get(k) for k in ("case_id", "subset", "num_persons", "status", "reason")}
            general = {k: v for k, v in (row.get("general") or {}).items()}
            models = (row.get("scores") or {}).get(protocol) or {None: {}}
            for model, vals in models.items():
                scalars = {k: v for k, v in vals.items() if v is None or (isinstance(v, (int, float))
                                                                          and not isinstance(v, bool))}
                records.append({**base, "protocol": protocol, "face_model": model, **scalars, **general})
        return pd.DataFrame.from_records(records)


def load_run(path: str | Path) -> Run:
    """A finished (or partly finished) run folder; ``results.json`` is validated when present.

    Args:
        path: the run folder, or its ``results.json``.

    Returns:
        A :class:`Run` (``summary`` is ``None`` while other shards are still running).

    Raises:
        MissingDataError: no run folder at that path.
        BadInputError: ``results.json`` does not match the schema (every violation listed).

    Example:
        >>> mb.load_run("runs/mine").headline()["metrics"]["sim_gt"]  # doctest: +SKIP
    """
    p = Path(path)
    folder = p.parent if p.is_file() else p
    if (folder / rf.RESULTS_FILE).is_file():
        return Run(folder, rf.read_results(folder)[1])
    rf.read_run(folder)  # a clear error when this is no run folder at all
    return Run(folder, None)


def _run(config: Any, out: Path, source: Any, progress: bool) -> Run:
    from multiid_bench.runner.evaluation import run_evaluation
    from multiid_bench.runner.progress import Progress

    with Progress("evaluating", enabled=progress) as bar:
        outcome = run_evaluation(config, out, source, on_plan=bar.plan, on_row=lambda r: bar.step(r.get("status")))
    return Run(out, outcome.results, outcome.rows_written)


def _config(model_name: str, bench: str, profile: str, protocol: str, subsets: Any, limit: int | None,
            device: str, offline: bool | None, shard: Any, settings: Mapping[str, Any], **kw: Any) -> Any:
    from multiid_bench.runner.config import RunConfig

    the_shard = _shard(shard)
    return RunConfig(model=model_name, bench=bench, subsets=_subsets(subsets), limit=limit, protocol=protocol,
                     profile=profile, device=resolve_device(device),
                     offline=_offline(offline, profile), shard_index=the_shard.index, shard_count=the_shard.count,
                     adapter_settings=dict(settings), **kw)


def evaluate(
    model: Any, *, bench: str = DEFAULT_BENCH, profile: ProfileName = "paper", protocol: Protocol = "paper",
    out: str | Path | None = None, subsets: str | Iterable[str] | None = None, limit: int | None = None,
    device: Device | str = "auto", batch_size: int = 32, offline: bool | None = None, shard: Any = None,
    cache_dir: str | None = None, ref_source: RefSource = "prepared", scorers: bool = True, seed: int = 0,
    settings: Mapping[str, Any] | None = None, name: str | None = None, gt_inputs: Sequence[str] = (),
    retry_failed: bool = False, progress: bool = True, judge: Mapping[str, Any] | None = None,
    paper_pixels: PaperPixels = "official",
) -> Run:
    """Generate every case with ``model`` and score it into ``out`` (resumable, shardable; ``mbench evaluate``).

    Args:
        model: ``fn(case: CaseInput) -> image`` (PIL, numpy, torch; ``None`` skips a case), a
            ``diffusers.DiffusionPipeline`` (call convention: docs/api.md), an adapter name, or an Adapter.
        bench: ``"demo"``, a Hugging Face id, or a path (JSONL, parquet, save_to_disk, official folder).
        profile: face profile, ``"paper"`` or ``"offline"``.
        protocol: the headline protocol, ``"paper"`` or ``"strict"`` (both are computed).
        out: run folder (default ``runs/<model>-<bench>-<profile>``); re-running resumes it.
        subsets: ``"p1,p2"`` or a list of subsets; ``None`` = all.
        limit: the first N cases only (the run is then marked not reportable).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        batch_size: faces per embedding batch.
        offline: ``True`` = no downloads; ``None`` follows the environment (the offline profile implies it).
        shard: ``"i/n"`` or a Shard; combined with RANK/WORLD_SIZE under torchrun/accelerate.
        cache_dir: the weights and feature cache (default ``$MBENCH_HOME`` or ``$XDG_CACHE_HOME/multiid-bench``).
        ref_source: ``"prepared"`` (tight face crops, as the paper's generators saw them) or ``"raw"``.
        scorers: compute CLIP-I, CLIP-T and aesthetics (their metrics are null, not 0, when off or missing).
        seed: global seed; each case's seed derives from it and the case id.
        settings: adapter settings (``-S key=value`` on the CLI); for a pipeline, extra ``__call__`` keywords.
        name: label of a function or pipeline model (default: its ``__name__`` or class name).
        gt_inputs: GT-derived inputs a function may read (``"boxes"``, ``"gt_image"``), recorded as such.
        retry_failed: generate again cases whose earlier generation failed (off: API refusals cost money).
        progress: a bar on a terminal, plain lines on other stderr.
        judge: VLM-judge settings for OmniContext PF/SC/Overall
            (:func:`multiid_bench.scorers.vlm_judge_config.judge_settings`, e.g. ``judge_settings()`` for the
            local Qwen2.5-VL-7B); None = no judge.
        paper_pixels: ``"official"`` (default) = the paper protocol scores the JPEG-q75 bytes the official
            pipeline stored; ``"as-given"`` = the files as they are (the strict protocol always does).
            docs/footguns.md.

    Returns:
        The :class:`Run` (``run.headline()``, ``run.metrics()``, ``run.cases_frame()``; ``summary`` is ``None``
        while other shards are still running).

    Raises:
        ConfigError: a wrong option, a model that cannot be called (e.g. a pipeline without image input), or a
            function returning something that is not an image (exit code 2).
        MissingWeightsError: face-model or adapter weights are not installed (exit code 3).
        NotComparableError: ``out`` holds a run made with other settings.

    Example:
        >>> run = mb.evaluate(my_generate, bench="demo", profile="offline", out="runs/mine")  # doctest: +SKIP
        >>> run.headline()["metrics"]["sim_gt"]["value"]  # doctest: +SKIP
    """
    from multiid_bench.adapters import adapter_class
    from multiid_bench.adapters.base import Adapter
    from multiid_bench.runner.evaluation import default_out_dir
    from multiid_bench.runner.shard import Shard
    from multiid_bench.runner.sources import AdapterSource

    settings = dict(settings or {})
    label = (adapter_class(model).name if isinstance(model, str) else model.name if isinstance(model, Adapter)
             else name or getattr(model, "__name__", None) or type(model).__name__)
    config = _config(label, bench, profile, protocol, subsets, limit, device, offline, shard, settings,
                     batch_size=batch_size, cache_dir=cache_dir, ref_source=ref_source, scorers=scorers, seed=seed,
                     judge=judge, paper_pixels=paper_pixels)
    adapter = _adapter(model, settings, label, gt_inputs, config.ref_pad_ratio)
    folder = Path(out) if out is not None else default_out_dir(config)
    source = AdapterSource(adapter, folder, global_seed=seed, shard=Shard(config.shard_index, config.shard_count),
                           retry_failed=retry_failed)
    return _run(config, folder, source, progress)


def score(
    images: str | Path, *, bench: str = DEFAULT_BENCH,
    layout: Literal["auto", "official", "flat", "mbench", "omnicontext"] = "auto", name: str | None = None,
    profile: ProfileName = "paper", protocol: Protocol = "paper", out: str | Path | None = None,
    subsets: str | Iterable[str] | None = None, limit: int | None = None, device: Device | str = "auto",
    batch_size: int = 32, offline: bool | None = None, shard: Any = None, cache_dir: str | None = None,
    ref_source: RefSource = "prepared", scorers: bool = True, seed: int = 0, progress: bool = True,
    judge: Mapping[str, Any] | None = None, paper_pixels: PaperPixels = "official",
) -> Run:
    """Score images made elsewhere (``<case id>.png``, official ``<case>/out.jpg`` or a generate folder).

    Args:
        images: the folder of generated images.
        bench: ``"demo"``, a Hugging Face id, or a path.
        layout: how the images are laid out (``"auto"`` detects it).
        name: model name recorded in the results (default: the folder name).
        profile: face profile, ``"paper"`` or ``"offline"``.
        protocol: the headline protocol, ``"paper"`` or ``"strict"``.
        out: run folder (default ``<images>/mbench-score``); re-running resumes it.
        subsets: ``"p1,p2"`` or a list of subsets; ``None`` = all.
        limit: the first N cases only (the run is then marked not reportable).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        batch_size: faces per embedding batch.
        offline: ``True`` = no downloads; ``None`` follows the environment.
        shard: ``"i/n"`` or a Shard.
        cache_dir: the weights and feature cache.
        ref_source: ``"prepared"`` or ``"raw"`` references.
        scorers: compute CLIP-I, CLIP-T and aesthetics.
        seed: recorded seed (images are given, so nothing is drawn).
        progress: a progress bar or plain lines on stderr.
        judge: VLM-judge settings for OmniContext; None = no judge.
        paper_pixels: ``"official"`` or ``"as-given"`` (see :func:`evaluate`).

    Returns:
        The :class:`Run`.

    Raises:
        ConfigError: a wrong option or layout (exit code 2).
        MissingWeightsError: face-model weights are not installed (exit code 3).

    Example:
        >>> mb.score("outputs/withanyone", bench="demo", profile="offline").headline()  # doctest: +SKIP
    """
    from multiid_bench.runner.sources import FolderSource

    images = Path(images)
    config = _config(name or images.resolve().name, bench, profile, protocol, subsets, limit, device, offline,
                     shard, {}, batch_size=batch_size, cache_dir=cache_dir, ref_source=ref_source, scorers=scorers,
                     seed=seed, judge=judge, paper_pixels=paper_pixels)
    folder = Path(out) if out is not None else images / "mbench-score"
    return _run(config, folder, FolderSource(images, layout), progress)


def generate(
    model: Any, *, bench: str = DEFAULT_BENCH, out: str | Path | None = None,
    subsets: str | Iterable[str] | None = None, limit: int | None = None, shard: Any = None, seed: int = 0,
    device: Device | str = "auto", offline: bool | None = None, cache_dir: str | None = None,
    settings: Mapping[str, Any] | None = None, name: str | None = None, gt_inputs: Sequence[str] = (),
    retry_failed: bool = False, progress: bool = True,
) -> "GenerateSummary":
    """Generate a bench's images only (``mbench generate``); ``mbench score --images OUT`` scores them.

    Args:
        model: a function, a ``diffusers.DiffusionPipeline``, an adapter name or an Adapter (see :func:`evaluate`).
        bench: ``"demo"``, a Hugging Face id, or a path.
        out: output folder (default ``mbench-runs/<model>``); re-running resumes it.
        subsets: ``"p1,p2"`` or a list of subsets; ``None`` = all.
        limit: the first N cases only.
        shard: ``"i/n"`` or a Shard.
        seed: global seed; each case's seed derives from it and the case id.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        offline: ``True`` = no downloads; ``None`` follows the environment.
        cache_dir: the weights and data cache.
        settings: adapter settings, or a pipeline's extra ``__call__`` keywords.
        name: label of a function or pipeline model.
        gt_inputs: GT-derived inputs a function may read, recorded as such.
        retry_failed: generate again cases whose earlier generation failed.
        progress: a progress bar or plain lines on stderr.

    Returns:
        A ``GenerateSummary`` (counts and the folder).

    Raises:
        ConfigError: a wrong option or a model that cannot be called (exit code 2).
        MissingWeightsError: adapter weights are not installed (exit code 3).

    Example:
        >>> mb.generate("dummy", bench="demo", out="images/dummy")  # doctest: +SKIP
    """
    from multiid_bench.data.loaders import load_bench
    from multiid_bench.runner.config import RunConfig
    from multiid_bench.runner.progress import Progress
    from multiid_bench.runner.sources import generate_bench

    offline = _offline(offline)
    adapter = _adapter(model, settings or {}, name, gt_inputs, RunConfig.ref_pad_ratio)
    bench_obj = load_bench(bench, cache_dir=cache_dir, offline=offline)
    folder = Path(out) if out is not None else Path("mbench-runs") / adapter.name
    with Progress("generating", enabled=progress) as bar:
        return generate_bench(adapter, bench_obj, folder, global_seed=seed, shard=_shard(shard),
                              subsets=_subsets(subsets), limit=limit, retry_failed=retry_failed,
                              device=resolve_device(device, adapter.capabilities.integration),
                              on_plan=bar.plan, on_result=lambda _c, g: bar.step(g.status))
