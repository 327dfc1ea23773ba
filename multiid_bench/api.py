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

from multiid_bench.errors import EXIT_OK, ConfigError, run_exit_code
from multiid_bench.runner import run_folder as rf
from multiid_bench.runner.process_state import preserves_process_state
from multiid_bench.runner.config import Protocol, RefSource

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from PIL import Image

    from multiid_bench.adapters.base import Adapter, GenerationResult
    from multiid_bench.data.case import Case
    from multiid_bench.runner.sources import GenerateSummary

__all__ = ["CaseInput", "Device", "PaperPixels", "ProfileName", "Run", "check_device", "check_out", "evaluate",
           "generate", "load_run", "resolve_device", "say_resumed", "score"]

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


def _function_adapter(fn: Callable[[CaseInput], Any], name: str | None, gt_inputs: Sequence[str],
                      version: str | None = None) -> "Adapter":
    """Wrap ``fn(case) -> PIL.Image`` (``None`` = not applicable to this case) as an adapter.

    The adapter carries ``model_fingerprint`` (code, closure, ``version``: runner.fingerprint), so a resumed
    run refuses a changed function; a lambda is labelled ``lambda-<fingerprint>`` (its own default folder).
    """
    from multiid_bench.adapters.base import Adapter, Capabilities, GenerationResult
    from multiid_bench.model_calls import to_pil_image
    from multiid_bench.runner.fingerprint import callable_fingerprint

    fingerprint = callable_fingerprint(fn, version)
    label = name or getattr(fn, "__name__", None) or type(fn).__name__
    if label == "<lambda>":
        label = f"lambda-{fingerprint[:8]}"
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
    adapter = FunctionAdapter()
    adapter.model_fingerprint = fingerprint  # type: ignore[attr-defined]
    return adapter


def _adapter(model: Any, settings: Mapping[str, Any], name: str | None, gt_inputs: Sequence[str],
             ref_pad_ratio: float, version: str | None = None) -> "Adapter":
    from multiid_bench.adapters import adapter_class
    from multiid_bench.adapters.base import Adapter
    from multiid_bench.model_calls import is_diffusers_pipeline, pipeline_adapter

    if version is not None and (isinstance(model, (str, Adapter)) or not callable(model)):
        raise ConfigError("version= labels a Python function model (its fingerprint); adapters carry their own "
                          "version and settings")
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
        return _function_adapter(model, name, gt_inputs, version)
    raise ConfigError(f"model must be a callable, an adapter name or an Adapter, got {type(model).__name__}")


def resolve_device(device: Device | str = "auto", integration: str | None = None) -> str:
    """The torch device a run uses.

    Args:
        device: ``"auto"``: CUDA when available (``cuda:$LOCAL_RANK`` under torchrun/accelerate), else CPU;
            anything else is checked (:func:`check_device`) and returned as given.
        integration: the adapter's integration kind; ``builtin`` and ``api`` adapters need no GPU (``cpu``).

    Returns:
        A device string such as ``"cpu"``, ``"cuda"`` or ``"cuda:1"``.

    Raises:
        ConfigError: a device that does not exist here (``gpu``, ``cuda`` without a GPU): a usage error
            (exit 2), said before any folder is made or model loaded.

    Example:
        >>> resolve_device("cpu")
        'cpu'
    """
    if device != "auto":
        check_device(device)
        return device
    if integration in ("builtin", "api"):
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    local = os.environ.get("LOCAL_RANK")
    return f"cuda:{int(local) % max(torch.cuda.device_count(), 1)}" if local and local.isdigit() else "cuda"


def check_device(device: str) -> None:
    """Refuse a device name torch does not know (``gpu``) or one this machine lacks (``cuda`` without a GPU)."""
    import re

    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", device):
        raise ConfigError(f"device {device!r} is not a device name; use auto, cpu, cuda, cuda:N or mps")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: no CUDA GPU is visible here (torch.cuda.is_available() is False); "
                              "use device 'cpu' or 'auto'")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: only {torch.cuda.device_count()} CUDA GPU(s) visible here")
    elif device == "mps":
        import torch

        if not torch.backends.mps.is_available():
            raise ConfigError("device 'mps': Apple's Metal backend is not available here; use device 'cpu' or 'auto'")


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
        """5 when nothing was evaluated, 4 when some cases failed (results are written anyway), else 0
        (:func:`multiid_bench.errors.run_exit_code`; a case scored with missing faces is not a failure)."""
        if self.summary is None:
            return EXIT_OK
        return run_exit_code(self.summary["counts"])

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
    """A finished (or partly finished) run: a run folder, an exported folder, or a run pushed to the Hub.

    ``hf://USER/NAME[@REVISION]`` (what ``mbench push`` uploaded) is read exactly as ``mbench leaderboard
    hf://...`` reads it (:func:`multiid_bench.leaderboard.hub.resolve_run_source`): from the Hugging Face
    cache when it is there, offline too, else its JSON files and card are downloaded; the numbers and the
    comparability key are the pushed run's.

    Args:
        path: the run folder, its ``results.json``, a folder written by ``mbench export``, or
            ``hf://USER/NAME[@REVISION]``.

    Returns:
        A :class:`Run` (``summary`` is ``None`` while other shards are still running).

    Raises:
        ConfigError: no run folder at that path, or ``hf://...`` is not ``USER/NAME``.
        MissingDataError: an ``hf://`` run that is neither in the Hugging Face cache nor reachable (offline
            or no network; exit code 3), or no such Hub dataset.
        BadInputError: ``results.json`` does not match the schema (every violation listed).

    Example:
        >>> mb.load_run("runs/mine").headline()["metrics"]["sim_gt"]  # doctest: +SKIP
        >>> mb.load_run("hf://alice/uno-multiid@v1").summary["model"]  # doctest: +SKIP
    """
    from multiid_bench.leaderboard.hub import is_hub_source, resolve_run_source

    p = resolve_run_source(path) if is_hub_source(str(path)) else Path(path)
    if not p.exists():
        raise ConfigError(f"{p} does not exist: pass a run folder written by mb.evaluate / mb.score "
                          "(or 'mbench evaluate' / 'mbench score'), its results.json, or hf://USER/NAME")
    folder = p.parent if p.is_file() else p
    if (folder / rf.RESULTS_FILE).is_file():
        return Run(folder, rf.read_results(folder)[1])
    rf.read_run(folder)  # a clear error when this is no run folder at all
    return Run(folder, None)


def check_out(out: Path) -> Path:
    """The run folder must be a folder (or not exist yet): refused before anything is written."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={str(out)!r} is an existing file, not a folder; pass a folder for the run "
                          "(it is created when missing)")
    return out


def _prepare_out(out: Path, overwrite: bool) -> Path:
    """Refuse a file; with ``overwrite`` move an existing folder's entries aside (never deleted)."""
    check_out(out)
    if overwrite and out.is_dir() and any(out.iterdir()):
        from multiid_bench.runner.folder_lock import ensure_no_writer

        ensure_no_writer(out)  # a folder another process is writing is never set aside under it
        rf.move_aside(out)
    return out


def say_resumed(out: Path, to_run: int, done: int, *, what: str = "row", stream: Any = None) -> None:
    """Resuming is never silent: a run that reuses everything says so on stdout (``stream``), a partial resume
    on stderr."""
    import sys

    if done and not to_run:
        print(f"{out}: all {done} case(s) of this run already have a {what}; nothing was generated or scored "
              "again (results come from the stored rows). To start afresh: overwrite=True / --overwrite.",
              file=stream or sys.stdout, flush=True)
    elif done:
        print(f"resuming {out}: {done} case(s) already done, {to_run} to run", file=sys.stderr, flush=True)


def _run(config: Any, out: Path, source: Any, progress: bool) -> Run:
    from multiid_bench.runner.evaluation import run_evaluation
    from multiid_bench.runner.progress import Progress

    def on_plan(to_run: int, done: int) -> None:
        bar.plan(to_run, done)
        say_resumed(out, to_run, done)

    with Progress("evaluating", enabled=progress) as bar:
        outcome = run_evaluation(config, out, source, on_plan=on_plan, on_row=lambda r: bar.step(r.get("status")))
    return Run(out, outcome.results, outcome.rows_written)


def _config(model_name: str, bench: str, profile: str, protocol: str, subsets: Any, limit: int | None,
            device: str, offline: bool | None, shard: Any, settings: Mapping[str, Any], **kw: Any) -> Any:
    from multiid_bench.runner.config import RunConfig

    the_shard = _shard(shard)
    if kw.get("judge") is not None:  # --subset paper: the paper's prompt set unless asked otherwise (said)
        from multiid_bench.judge.settings import settings_for_run

        kw["judge"] = settings_for_run(kw["judge"], _subsets(subsets))
    return RunConfig(model=model_name, bench=bench, subsets=_subsets(subsets), limit=limit, protocol=protocol,
                     profile=profile, device=resolve_device(device),
                     offline=_offline(offline, profile), shard_index=the_shard.index, shard_count=the_shard.count,
                     adapter_settings=dict(settings), **kw)


@preserves_process_state
def evaluate(
    model: Any, *, bench: str = DEFAULT_BENCH, profile: ProfileName = "paper", protocol: Protocol = "paper",
    out: str | Path | None = None, subsets: str | Iterable[str] | None = None, limit: int | None = None,
    device: Device | str = "auto", batch_size: int = 32, offline: bool | None = None, shard: Any = None,
    cache_dir: str | None = None, ref_source: RefSource = "prepared", scorers: bool = True, seed: int = 0,
    settings: Mapping[str, Any] | None = None, name: str | None = None, gt_inputs: Sequence[str] = (),
    retry_failed: bool = False, progress: bool = True, judge: Mapping[str, Any] | None = None,
    paper_pixels: PaperPixels = "official", version: str | None = None, overwrite: bool = False,
    raise_errors: bool = False,
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
            (:func:`multiid_bench.judge.settings.judge_settings`, e.g. ``judge_settings()`` for the
            local Qwen2.5-VL-7B); None = no judge. Without ``prompts``, ``subsets="paper"`` gets the paper's
            face-identity SC prompt (Table 1b), any other selection OmniContext's own (said, recorded).
        version: a function model's version label (a checkpoint hash, a date), hashed into its fingerprint
            next to its code and closure (best effort: docs/results.md); a changed fingerprint refuses to resume.
        overwrite: start ``out`` afresh: its old entries move into ``out/replaced-<UTC time>/`` (never deleted).
        raise_errors: re-raise the model's first exception at once (debugging). Off: the case fails, its row
            keeps the exception type, message and last frame, the traceback goes to ``out/run.log``.
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
    from multiid_bench.runner.config import RunConfig
    from multiid_bench.runner.evaluation import default_out_dir
    from multiid_bench.runner.shard import Shard
    from multiid_bench.runner.sources import AdapterSource

    settings = dict(settings or {})
    if isinstance(model, str):  # the common `steps` under the adapter's own name, in the run's settings too
        settings = adapter_class(model).canonical_settings(settings)
    adapter = _adapter(model, settings, name, gt_inputs, RunConfig.ref_pad_ratio, version)
    config = _config(adapter.name, bench, profile, protocol, subsets, limit, device, offline, shard, settings,
                     batch_size=batch_size, cache_dir=cache_dir, ref_source=ref_source, scorers=scorers, seed=seed,
                     judge=judge, paper_pixels=paper_pixels,
                     model_fingerprint=getattr(adapter, "model_fingerprint", None))
    folder = _prepare_out(Path(out) if out is not None else default_out_dir(config), overwrite)
    source = AdapterSource(adapter, folder, global_seed=seed, shard=Shard(config.shard_index, config.shard_count),
                           retry_failed=retry_failed, raise_errors=raise_errors)
    return _run(config, folder, source, progress)


@preserves_process_state
def score(
    images: str | Path, *, bench: str = DEFAULT_BENCH,
    layout: Literal["auto", "official", "flat", "mbench", "omnicontext"] = "auto", name: str | None = None,
    profile: ProfileName = "paper", protocol: Protocol = "paper", out: str | Path | None = None,
    subsets: str | Iterable[str] | None = None, limit: int | None = None, device: Device | str = "auto",
    batch_size: int = 32, offline: bool | None = None, shard: Any = None, cache_dir: str | None = None,
    ref_source: RefSource = "prepared", scorers: bool = True, seed: int = 0, progress: bool = True,
    judge: Mapping[str, Any] | None = None, paper_pixels: PaperPixels = "official", overwrite: bool = False,
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
        overwrite: start ``out`` afresh: its old entries move into ``out/replaced-<UTC time>/`` (never deleted).

    Returns:
        The :class:`Run`.

    Raises:
        ConfigError: a wrong option or layout, images generated from other references than ``ref_source``
            (their generation records say), or file names that match no case (exit code 2).
        MissingWeightsError: face-model weights are not installed (exit code 3).

    Example:
        >>> mb.score("outputs/withanyone", bench="demo", profile="offline").headline()  # doctest: +SKIP
    """
    from multiid_bench.data.omnicontext import is_omnicontext_spec
    from multiid_bench.runner.sources import FolderSource, check_ref_source

    images = Path(images)
    if not is_omnicontext_spec(str(bench)):  # OmniContext inputs are never cropped
        check_ref_source(images, ref_source)
    config = _config(name or images.resolve().name, bench, profile, protocol, subsets, limit, device, offline,
                     shard, {}, batch_size=batch_size, cache_dir=cache_dir, ref_source=ref_source, scorers=scorers,
                     seed=seed, judge=judge, paper_pixels=paper_pixels)
    folder = _prepare_out(Path(out) if out is not None else images / "mbench-score", overwrite)
    return _run(config, folder, FolderSource(images, layout), progress)


@preserves_process_state
def generate(
    model: Any, *, bench: str = DEFAULT_BENCH, out: str | Path | None = None,
    subsets: str | Iterable[str] | None = None, limit: int | None = None, shard: Any = None, seed: int = 0,
    device: Device | str = "auto", offline: bool | None = None, cache_dir: str | None = None,
    settings: Mapping[str, Any] | None = None, name: str | None = None, gt_inputs: Sequence[str] = (),
    retry_failed: bool = False, progress: bool = True, ref_source: RefSource = "prepared",
    profile: ProfileName = "paper", version: str | None = None, overwrite: bool = False, raise_errors: bool = False,
) -> "GenerateSummary":
    """Generate a bench's images only (``mbench generate``); ``mbench score --images OUT`` scores them.

    The model gets exactly what :func:`evaluate` gives it: with ``ref_source="prepared"`` (the default) the
    references are tight face crops made by ``profile``'s crop detector (the paper profile: antelopev2 when
    present), so ``generate`` then ``score`` (same ``ref_source`` and ``profile``) equals ``evaluate``. Every
    generation record and ``generate.json`` say which references the model saw.

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
        ref_source: ``"prepared"`` (tight face crops, as :func:`evaluate` gives them) or ``"raw"``.
        profile: the face profile whose detector makes the prepared crops, ``"paper"`` or ``"offline"``.
        version: a function model's version label, hashed into its fingerprint (see :func:`evaluate`).
        overwrite: start ``out`` afresh: its old entries move into ``out/replaced-<UTC time>/`` (never deleted).
        raise_errors: re-raise the model's first exception at once (debugging).

    Returns:
        A ``GenerateSummary`` (counts and the folder).

    Raises:
        ConfigError: a wrong option or a model that cannot be called (exit code 2).
        MissingWeightsError: adapter weights are not installed (exit code 3).

    Example:
        >>> mb.generate("dummy", bench="demo", out="images/dummy")  # doctest: +SKIP
    """
    import sys

    from multiid_bench.data.loaders import open_bench
    from multiid_bench.runner.backends import generator_bench
    from multiid_bench.runner.config import RunConfig
    from multiid_bench.runner.progress import Progress
    from multiid_bench.runner.sources import generate_bench

    offline = _offline(offline)
    the_shard = _shard(shard)
    adapter = _adapter(model, settings or {}, name, gt_inputs, RunConfig.ref_pad_ratio, version)
    config = RunConfig(model=adapter.name, bench=bench, profile=profile, ref_source=ref_source,  # type: ignore[arg-type]
                       device=resolve_device(device), cache_dir=cache_dir, offline=offline, subsets=_subsets(subsets),
                       limit=limit)
    loaded = open_bench(bench, cache_dir=cache_dir, offline=offline)
    folder = _prepare_out(Path(out) if out is not None else Path("mbench-runs") / adapter.name, overwrite)

    def on_plan(to_run: int, done: int) -> None:
        bar.plan(to_run, done)
        say_resumed(folder, to_run, done, what="generation record", stream=sys.stderr)  # stdout: --json

    with Progress("generating", enabled=progress) as bar:
        return generate_bench(adapter, loaded.bench, folder, global_seed=seed, shard=the_shard,
                              subsets=config.subsets, limit=limit, retry_failed=retry_failed,
                              device=resolve_device(device, adapter.capabilities.integration),
                              on_plan=on_plan, on_result=lambda _c, g: bar.step(g.status), ref_source=ref_source,
                              prepare=lambda b: generator_bench(b, config, loaded.kind), raise_errors=raise_errors)
