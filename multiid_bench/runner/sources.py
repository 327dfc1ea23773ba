"""Where a run's generated images come from, and the one generation loop (``evaluate`` and ``generate``).

Both sources hand the runner a *path* (never pixels), so every image, generated here or elsewhere, is
decoded and hashed by the same code, once.

:class:`AdapterSource` is the generation loop's per-case step for ``mbench evaluate`` and
``mbench generate`` alike (:func:`generate_bench` drives it over a bench). An image is saved losslessly
to ``<out>/images/<case>.png`` (atomically) *before* its record is appended to
``generations[.shard-i-of-n].jsonl``, so a killed run never leaves a record without its image; records
are appended, never rewritten. **One resume rule**: a case's last record is reused when its seed matches
and it is ``ok`` with its image present, ``not_applicable``, or ``failed`` (an API refusal is not paid for
twice by accident) unless ``retry_failed``; anything else is generated again.
"""
from __future__ import annotations

import io
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from multiid_bench.errors import ConfigError, MBenchError, stops_run
from multiid_bench.runner import run_folder as rf

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.adapters.base import Adapter
    from multiid_bench.data.case import Bench, Case
    from multiid_bench.runner.shard import Shard

__all__ = ["AdapterSource", "FolderSource", "GenerateSummary", "Generated", "ImageSource", "case_ref_source",
           "check_ref_source", "describe_exception", "generate_bench", "generate_held"]

log = logging.getLogger(__name__)
# Keys of generate.json that must match for a resumed ``mbench generate`` to reuse existing records.
_RESUME_KEYS = ("adapter", "adapter_version", "settings", "global_seed", "bench_manifest_sha256", "ref_source",
                "model_fingerprint")


def describe_exception(exc: BaseException) -> dict[str, str]:
    """What a case row keeps of a model's exception: its type, message and the last frame (where it was raised).

    Example:
        >>> try:
        ...     1 / 0
        ... except ZeroDivisionError as e:
        ...     d = describe_exception(e)
        >>> d["type"], d["message"], d["where"].startswith("<doctest")
        ('ZeroDivisionError', 'division by zero', True)
    """
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    where = f"{last.filename}:{last.lineno} in {last.name}" if last is not None else "unknown location"
    return {"type": type(exc).__name__, "message": str(exc), "where": where}


def case_ref_source(case: "Case") -> str:
    """What the generator was given as references for ``case``: ``prepared`` (tight face crops) or ``raw``."""
    return "prepared" if case.meta.get("ref_mode") == "prepared_crops" else "raw"


def check_ref_source(images: Path, ref_source: str) -> None:
    """Refuse (exit 2) to score a generation folder whose records say the model saw other references.

    Scoring compares each generated face with the references scoring uses (``ref_source``); a model fed
    the raw photos but scored against prepared crops (or the reverse) gives numbers that belong to neither
    workflow. Records written before ``ref_source`` was recorded are scored with a warning.
    """
    records = rf.read_generations(Path(images)) if Path(images).is_dir() else {}
    seen = {str(r.get("ref_source")) for r in records.values() if r.get("ref_source") is not None}
    other = sorted(seen - {ref_source})
    if other:
        raise ConfigError(f"{images}: its generation records say the model was given ref_source={other[0]} "
                          f"references, but scoring asks for ref_source={ref_source}; score with "
                          f"--ref-source {other[0]} (ref_source={other[0]!r}), or generate again")
    if records and len(seen) < 1:
        log.warning("%s: generation records do not say which references the model saw (made before mbench "
                    "recorded ref_source); scoring against ref_source=%s", images, ref_source)


@dataclass
class Generated:
    """The generated image of one case: a path (status ``ok``) or why there is none."""

    status: str
    path: str | None = None
    reason: str | None = None
    seed: int | None = None
    record: dict[str, Any] = field(default_factory=dict)


class ImageSource(Protocol):
    name: str

    def describe(self) -> dict[str, Any]: ...

    def load(self, device: str) -> None: ...

    def obtain(self, case: "Case") -> Generated: ...


class AdapterSource:
    """Generate through an adapter, appending one record per case; reuse what the resume rule allows."""

    def __init__(self, adapter: "Adapter", out_dir: Path, *, global_seed: int, shard: "Shard | None" = None,
                 retry_failed: bool = False, raise_errors: bool = False) -> None:
        self.raise_errors = raise_errors  # debugging: an exception of the model stops the run at once
        self.adapter = adapter
        self.name = adapter.name
        self.out_dir = Path(out_dir)
        self.global_seed = int(global_seed)
        self.retry_failed = retry_failed
        self.records_path = rf.generations_file(self.out_dir, shard)
        self._previous = rf.read_generations(self.out_dir)
        self._loaded = False
        self._device = "cpu"

    def describe(self) -> dict[str, Any]:
        return {"kind": "adapter", **self.adapter.describe(), "global_seed": self.global_seed}

    def load(self, device: str) -> None:
        """Remember the device; the adapter loads before the first case that needs the model.

        Called once this process holds the folder (``folder_lock``): only then is a torn last record cut (a
        record being appended by another process is never touched) and the records read again.
        """
        self._device = device
        if rf.repair_tail(self.records_path):  # a torn last record must not glue onto the next one
            self._previous = rf.read_generations(self.out_dir)

    def reusable(self, case: "Case") -> dict[str, Any] | None:
        """The resume rule (module docstring): the case's previous record, when it may be reused."""
        from multiid_bench.adapters.base import derive_seed

        prev = self._previous.get(case.id)
        if prev is None or prev.get("seed") != derive_seed(self.global_seed, case.id):
            return None
        status = prev.get("status")
        if status == "ok":
            return prev if rf.image_path(self.out_dir, case.id).is_file() else None
        return None if status == "failed" and self.retry_failed else prev

    def obtain(self, case: "Case") -> Generated:
        from multiid_bench.adapters.base import GenerationResult, derive_seed

        prev = self.reusable(case)
        if prev is not None:
            return self._generated(case, {**prev, "reused": True})
        seed = derive_seed(self.global_seed, case.id)
        if not self._loaded and self.adapter.not_applicable_reason(case) is None:
            self.adapter.load(self._device)  # first case that needs the model; skip-only runs never load it
            self._loaded = True
        error: dict[str, Any] | None = None
        try:
            result = self.adapter.generate(case, seed)
        except Exception as e:  # the error's own policy decides: stop the run, or fail this case
            if stops_run(e) or self.raise_errors:
                raise
            error = describe_exception(e)
            self._log_traceback(case, e)
            # a toolkit error (an API refusal) says itself; any other exception is a bug: say where it was raised
            at = "" if isinstance(e, MBenchError) else f" (at {Path(error['where']).name})"
            result = GenerationResult(None, self.adapter.record(case, seed), "failed",
                                      f"{error['type']}: {error['message']}{at}")
        image_file = None
        buf = io.BytesIO()
        if result.status == "ok":
            try:
                result.image.save(buf, format="PNG")  # type: ignore[union-attr]
            except (OSError, ValueError, TypeError, AttributeError) as e:  # an image PNG cannot hold fails this case
                log.warning("adapter %s returned an image for case %s that cannot be stored: %s", self.name, case.id, e)
                result = GenerationResult(None, result.record, "failed",
                                          f"generated image cannot be stored as PNG: {type(e).__name__}: {e}")
        if result.status == "ok":
            from multiid_bench._io import atomic_write_bytes

            target = rf.image_path(self.out_dir, case.id)
            atomic_write_bytes(target, buf.getvalue(), fsync=True)
            image_file = f"{rf.IMAGES_DIR}/{target.name}"
        row = {**result.to_row(image_file), "global_seed": self.global_seed, "ref_source": case_ref_source(case)}
        if error is not None:
            row["error"] = error
        rf.append_row(self.records_path, row)
        self._previous[case.id] = row
        return self._generated(case, row)

    def _log_traceback(self, case: "Case", exc: BaseException) -> None:
        """The full traceback (file:line of every frame) to the logger and to the run's ``run.log``."""
        import traceback

        from multiid_bench.runner.provenance import utc_now

        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error("model %s raised on case %s (the case is failed, the run goes on):\n%s", self.name, case.id, text)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / rf.RUN_LOG, "a", encoding="utf-8") as f:
            f.write(f"[{utc_now()}] model {self.name} raised on case {case.id}:\n{text}\n")

    def _generated(self, case: "Case", row: dict[str, Any]) -> Generated:
        status, seed = row.get("status", "failed"), row.get("seed")
        if status == "ok":
            return Generated("ok", str(rf.image_path(self.out_dir, case.id)), None, seed, row)
        prefix = "not applicable" if status == "not_applicable" else "generation failed"
        return Generated(status, None, f"{prefix}: {row.get('reason')}", seed, row)


class FolderSource:
    """Images made elsewhere (``mbench score --images DIR``), located with the ``folder`` adapter's rules."""

    name = "images"

    def __init__(self, root: Path, layout: str = "auto") -> None:
        self.root = Path(root).expanduser().absolute()  # rows record absolute paths: readable from any directory
        self.layout = layout

    def describe(self) -> dict[str, Any]:
        return {"kind": "images", "root": str(self.root), "layout": self.layout}

    def load(self, device: str) -> None:
        if not self.root.is_dir():
            raise ConfigError(f"--images {self.root} is not a directory; point it at the generated images")

    def check_plan(self, cases: "list[Case]") -> None:
        """Stop at once (exit 2) when not one case's image is found: misnamed files, or the wrong folder.

        Called before the run folder is written, so a folder of ``0.png, 1.png, ...`` never becomes an
        all-failed run. Some images missing is a partial run (those cases fail, exit 4), as before.
        """
        from multiid_bench.adapters.folder import find_image

        if not cases or not self.root.is_dir():
            return
        first_tried: list[Path] = []
        for case in cases:
            try:
                path, _, tried = find_image(self.root, case, self.layout)
            except ConfigError:
                return  # found (in two layouts): the per-case row says so
            if path is not None:
                return
            first_tried = first_tried or tried
        present = sorted(p.name for p in self.root.iterdir())
        shown = ", ".join(present[:5]) + (", ..." if len(present) > 5 else "") if present else "nothing"
        expected = ", ".join(str(p.relative_to(self.root)) for p in first_tried[:3])
        raise ConfigError(f"--images {self.root}: none of the {len(cases)} expected names found (layout "
                          f"{self.layout}); expected e.g. {expected}; found {shown}. Name each image after its "
                          "case id, or pass the --layout the folder uses")

    def obtain(self, case: "Case") -> Generated:
        from multiid_bench.adapters.folder import find_image

        where = {"source": "images", "root": str(self.root)}
        try:
            path, layout, tried = find_image(self.root, case, self.layout)
        except ConfigError as e:  # find_image's only error is about this case (two candidate files)
            return Generated("failed", None, str(e), None, where)
        if path is None:
            shown = ", ".join(str(p) for p in tried[:3]) + (" ..." if len(tried) > 3 else "")
            return Generated("failed", None, f"generated image not found (looked for {shown})", None, where)
        return Generated("ok", str(path), None, None, {"source": "images", "path": str(path), "layout": layout})


@dataclass
class GenerateSummary:
    """Counts of one ``generate_bench`` call (this shard only)."""

    out_dir: Path
    planned: int = 0
    skipped_done: int = 0
    ok: int = 0
    failed: int = 0
    not_applicable: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "out_dir": str(self.out_dir), "failures": [list(f) for f in self.failures]}


def _check_generate_json(out_dir: Path, adapter: "Adapter", bench: "Bench", global_seed: int,
                         selection: dict[str, Any], ref_source: str, references: dict[str, Any] | None) -> None:
    """Write ``generate.json``, or refuse a folder made with other settings (exit 2)."""
    from multiid_bench._version import __version__
    from multiid_bench.runner.provenance import utc_now

    desc = adapter.describe()
    config = {
        "schema_version": 1, "adapter": desc["name"], "adapter_version": desc["version"], "settings": desc["settings"],
        "capabilities": desc["capabilities"], "global_seed": int(global_seed),
        "seed_rule": "sha256(f'{global_seed}:{case_id}:0')[:8] mod 2**31", "bench_id": bench.id,
        "bench_manifest_sha256": bench.manifest_sha256, "selection": selection,
        "reportable": selection.get("limit") is None, "ref_source": ref_source, "references": references,
        "mbench_version": __version__, "created": utc_now(),
    }
    fingerprint = getattr(adapter, "model_fingerprint", None)
    if fingerprint is not None:  # a Python function: its code, closure and version= (api.callable_fingerprint)
        config["model_fingerprint"] = fingerprint
    path = out_dir / rf.GENERATE_FILE
    if not path.is_file():
        rf.write_json(path, config)
        return
    old = rf.read_json(path, rf.GENERATE_FILE)
    diff = [k for k in _RESUME_KEYS if old.get(k) != config.get(k)]
    if diff:
        shown = "; ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in diff)
        raise ConfigError(f"{out_dir} holds a generation made with different settings ({shown}); resume with the "
                          "same settings, use another --out / out=, or start afresh with --overwrite / overwrite=True "
                          "(the old entries are moved aside, never deleted)")


def generate_bench(
    adapter: "Adapter", bench: "Bench", out_dir: Path, *, global_seed: int = 0, shard: "Shard | None" = None,
    subsets: Iterable[str] | None = None, limit: int | None = None, retry_failed: bool = False, device: str = "cpu",
    on_plan: Callable[[int, int], None] | None = None, on_result: Callable[["Case", Generated], None] | None = None,
    ref_source: str = "raw", prepare: Callable[["Bench"], "Bench"] | None = None, raise_errors: bool = False,
) -> GenerateSummary:
    """:func:`generate_held` as the folder's only writer for this shard (a second process refuses at once)."""
    from multiid_bench.runner.folder_lock import RunFolderLock, shard_label

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with RunFolderLock(Path(out_dir), shard_label(shard), what="generate"):
        return generate_held(adapter, bench, out_dir, global_seed=global_seed, shard=shard, subsets=subsets,
                             limit=limit, retry_failed=retry_failed, device=device, on_plan=on_plan,
                             on_result=on_result, ref_source=ref_source, prepare=prepare, raise_errors=raise_errors)


def generate_held(
    adapter: "Adapter", bench: "Bench", out_dir: Path, *, global_seed: int = 0, shard: "Shard | None" = None,
    subsets: Iterable[str] | None = None, limit: int | None = None, retry_failed: bool = False, device: str = "cpu",
    on_plan: Callable[[int, int], None] | None = None, on_result: Callable[["Case", Generated], None] | None = None,
    ref_source: str = "raw", prepare: Callable[["Bench"], "Bench"] | None = None, raise_errors: bool = False,
) -> GenerateSummary:
    """Generate every case of ``bench`` this shard owns into ``out_dir`` (``mbench generate``), resuming.

    ``subsets`` / ``limit`` select cases first, then the shard takes its share. ``generate.json`` records
    the whole bench's manifest hash, so a resumed run may use another selection or shard count.
    ``on_plan(to_generate, already_done)`` and ``on_result(case, generated)`` drive progress.
    ``prepare`` turns the chosen cases into what the generator gets (``runner.backends.generator_bench``:
    the same references ``evaluate`` gives, per ``ref_source``, recorded in ``generate.json``).
    """
    from multiid_bench.data.refcrop import reference_info
    from multiid_bench.runner.shard import Shard, select_shard

    out_dir = Path(out_dir)
    subset_list = sorted(set(subsets)) if subsets else None
    chosen_bench = bench.select(subset_list, limit) if (subset_list or limit is not None) else bench
    if prepare is not None:
        chosen_bench = prepare(chosen_bench)
    chosen = chosen_bench.cases
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_generate_json(out_dir, adapter, bench, global_seed, {"subsets": subset_list, "limit": limit}, ref_source,
                         reference_info(chosen_bench) if chosen else None)
    source = AdapterSource(adapter, out_dir, global_seed=global_seed, shard=shard, retry_failed=retry_failed,
                           raise_errors=raise_errors)
    source.load(device)
    mine = select_shard(list(chosen), shard or Shard(), key=lambda c: c.id)
    todo = [c for c in mine if source.reusable(c) is None]
    summary = GenerateSummary(out_dir=out_dir, planned=len(mine), skipped_done=len(mine) - len(todo))
    if on_plan:
        on_plan(len(todo), summary.skipped_done)
    for case in todo:
        gen = source.obtain(case)
        summary.ok += gen.status == "ok"
        summary.not_applicable += gen.status == "not_applicable"
        if gen.status == "failed":
            summary.failed += 1
            summary.failures.append((case.id, str(gen.record.get("reason") or "")))
        if on_result:
            on_result(case, gen)
    return summary
