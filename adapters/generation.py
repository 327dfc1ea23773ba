"""Generating a bench with one adapter: resumable, shardable, every file written atomically.

Output folder layout (what ``mbench score --images DIR`` and the ``folder`` adapter read back)::

    DIR/generate.json                      adapter, settings, global seed, bench id + manifest hash
    DIR/images/<case id>.png               one image per generated case (lossless)
    DIR/generations.jsonl                  one record per case (unsharded run), or
    DIR/generations.shard-I-of-N.jsonl     one file per shard / rank (merged by reading all of them)

A case is done when its record is written; an ``ok`` record is written only after its image has been
renamed into place, so a killed run never leaves a record without its image. Records files are rewritten
through a temporary file and ``os.replace``, so a reader never sees a torn line. Resume = skip cases with a
record (``failed`` ones too unless ``retry_failed``: an API refusal should not be paid for twice by
accident). The per-case seed is :func:`~multiid_bench.adapters.base.derive_seed` (global seed, case id).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from multiid_bench._io import atomic_write_bytes as _atomic_write_bytes
from multiid_bench.adapters.base import Adapter, GenerationResult, derive_seed
from multiid_bench.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from multiid_bench.data.case import Bench, Case
    from multiid_bench.runner.shard import Shard

__all__ = [
    "CONFIG_FILE",
    "IMAGES_DIR",
    "GenerateSummary",
    "atomic_write_bytes",
    "done_case_ids",
    "generate_bench",
    "image_path",
    "read_records",
    "records_file",
]

log = logging.getLogger(__name__)

CONFIG_FILE = "generate.json"
IMAGES_DIR = "images"
# Keys of generate.json that must match for a resumed run to reuse existing records.
_RESUME_KEYS = ("adapter", "adapter_version", "settings", "global_seed", "bench_manifest_sha256")


def image_path(out_dir: Path, case_id: str) -> Path:
    return Path(out_dir) / IMAGES_DIR / f"{case_id}.png"


def records_file(out_dir: Path, shard: "Shard | None" = None) -> Path:
    if shard is None or not shard.is_sharded:
        return Path(out_dir) / "generations.jsonl"
    width = max(3, len(str(shard.count)))
    return Path(out_dir) / f"generations.shard-{shard.index:0{width}d}-of-{shard.count:0{width}d}.jsonl"


def read_records(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Every record under ``out_dir`` (all shard files), keyed by case id; later files win."""
    rows: dict[str, dict[str, Any]] = {}
    out = Path(out_dir)
    files = sorted(set(out.glob("generations.jsonl")) | set(out.glob("generations.shard-*-of-*.jsonl")))
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                log.warning("%s line %d is not JSON; ignored (it will be regenerated)", f, n)
                continue
            if isinstance(row, dict) and "case_id" in row:
                rows[str(row["case_id"])] = row
    return rows


def done_case_ids(out_dir: Path, *, retry_failed: bool = False) -> set[str]:
    """Case ids that need no new generation: a record exists (and for ``ok``, its image too)."""
    done = set()
    for cid, row in read_records(out_dir).items():
        status = row.get("status")
        if status == "ok" and not image_path(out_dir, cid).is_file():
            continue
        if status == "failed" and retry_failed:
            continue
        done.add(cid)
    return done


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Atomic and fsynced: generated images and records must survive a crash whole or not at all."""
    _atomic_write_bytes(path, data, fsync=True)


def _png_bytes(image: Any) -> bytes:
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


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
        return {"out_dir": str(self.out_dir), "planned": self.planned, "skipped_done": self.skipped_done,
                "ok": self.ok, "failed": self.failed, "not_applicable": self.not_applicable,
                "failures": [list(f) for f in self.failures]}


def _run_config(adapter: Adapter, bench: "Bench", global_seed: int, selection: dict[str, Any]) -> dict[str, Any]:
    from multiid_bench._version import __version__

    desc = adapter.describe()
    return {
        "schema_version": 1,
        "adapter": desc["name"],
        "adapter_version": desc["version"],
        "settings": desc["settings"],
        "capabilities": desc["capabilities"],
        "global_seed": int(global_seed),
        "seed_rule": "sha256(f'{global_seed}:{case_id}:0')[:8] mod 2**31",
        "bench_id": bench.id,
        "bench_manifest_sha256": bench.manifest_sha256,
        "selection": selection,
        "reportable": selection.get("limit") is None,
        "mbench_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _check_resume(out_dir: Path, config: dict[str, Any]) -> None:
    path = out_dir / CONFIG_FILE
    if not path.is_file():
        atomic_write_bytes(path, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); delete it or use another --out") from None
    diff = [k for k in _RESUME_KEYS if old.get(k) != config.get(k)]
    if diff:
        shown = "; ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in diff)
        raise ConfigError(
            f"{out_dir} holds a generation made with different settings ({shown}); "
            "resume with the same settings or use another --out"
        )


def generate_bench(
    adapter: Adapter,
    bench: "Bench",
    out_dir: Path,
    *,
    global_seed: int = 0,
    shard: "Shard | None" = None,
    subsets: Iterable[str] | None = None,
    limit: int | None = None,
    retry_failed: bool = False,
    device: str = "cpu",
    on_plan: Callable[[int, int], None] | None = None,
    on_result: Callable[["Case", GenerationResult], None] | None = None,
) -> GenerateSummary:
    """Generate every case of ``bench`` this shard owns into ``out_dir``, skipping cases already done.

    ``subsets`` / ``limit`` select cases first (the first ``limit`` of the chosen subsets), then the shard
    takes its share. ``generate.json`` records the whole bench's manifest hash, so a resumed run may use
    another selection or shard count. ``adapter.load(device)`` runs once, before the first case that needs
    the model (missing weights fail before any image is made; a fully resumed run, or one where every case is
    "not applicable", loads nothing).
    ``on_plan(to_generate, already_done)`` and ``on_result(case, result)`` drive progress bars.
    """
    from multiid_bench.runner.shard import Shard, select_shard

    shard = shard or Shard()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    subset_list = sorted(set(subsets)) if subsets else None
    selection = {"subsets": subset_list, "limit": limit}
    _check_resume(out_dir, _run_config(adapter, bench, global_seed, selection))
    chosen = bench.select(subset_list, limit).cases if (subset_list or limit is not None) else bench.cases

    mine = select_shard(list(chosen), shard, key=lambda c: c.id)
    done = done_case_ids(out_dir, retry_failed=retry_failed)
    todo = [c for c in mine if c.id not in done]
    rec_path = records_file(out_dir, shard)
    own_rows = {cid: row for cid, row in _read_one(rec_path).items()}
    summary = GenerateSummary(out_dir=out_dir, planned=len(mine), skipped_done=len(mine) - len(todo))
    if on_plan:
        on_plan(len(todo), summary.skipped_done)
    loaded = False
    for case in todo:
        if not loaded and adapter.not_applicable_reason(case) is None:
            adapter.load(device)  # first case that needs the model; skipped-only runs never load it
            loaded = True
        seed = derive_seed(global_seed, case.id)
        result = adapter.generate(case, seed)
        image_file = None
        if result.status == "ok":
            target = image_path(out_dir, case.id)
            atomic_write_bytes(target, _png_bytes(result.image))
            image_file = f"{IMAGES_DIR}/{target.name}"
            summary.ok += 1
        elif result.status == "failed":
            summary.failed += 1
            summary.failures.append((case.id, result.reason or ""))
        else:
            summary.not_applicable += 1
        row = result.to_row(image_file)
        row["global_seed"] = int(global_seed)
        own_rows[case.id] = row
        _write_rows(rec_path, own_rows.values())
        if on_result:
            on_result(case, result)
    return summary


def _read_one(path: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "case_id" in row:
                rows[str(row["case_id"])] = row
    return rows


def _write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    atomic_write_bytes(path, text.encode("utf-8"))
