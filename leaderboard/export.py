"""``mbench export``: a run folder -> a folder in the Hugging Face dataset layout.

Why: results published next to a paper should load with the tools readers already have
(``datasets.load_dataset(DIR)`` or a Hub dataset id) *and* stay a run folder that every mbench reader
understands, so that ``mbench leaderboard DIR``, ``mbench compare``, ``mbench report`` and
``mb.load_run(DIR)`` give the numbers of the original run, not a re-computation::

    DIR/README.md                              dataset card: YAML (configs, model, bench + manifest hash,
                                               profile, protocol, judge, toolkit version, comparability key,
                                               headline numbers) and the headline table
    DIR/results.json                           the run's results, byte for byte
    DIR/run.json                               the run's plan and settings (when the run has one)
    DIR/cases.jsonl                            every case row (all shards merged, plan order), as written
    DIR/<protocol>/test-00000-of-00001.parquet one flat row per case and protocol (config = protocol;
                                               the headline protocol is the default config); with
                                               ``with_images`` the generated image as an ``Image`` column

The parquet files are a *view* of ``cases.jsonl`` (the per-case metrics that have a metric card, with
the face model in the column name, e.g. ``sim_gt.arcface``); the JSON files stay the source of truth.
"""
from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from multiid_bench.errors import ConfigError
from multiid_bench.leaderboard.cases import case_view
from multiid_bench.leaderboard.comparability import run_key
from multiid_bench.leaderboard.store import RunResult, load_results
from multiid_bench.runner import run_folder

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CARD_FILE", "ROWS_FILE", "SPLIT", "ExportResult", "card_metadata", "export_run", "headline_table",
           "parquet_path"]

log = logging.getLogger(__name__)
CARD_FILE = "README.md"
ROWS_FILE = "cases.jsonl"
SPLIT = "test"
IMAGE_COLUMN = "image"
#: Columns every parquet row has, before the metric columns.
BASE_COLUMNS = ("case_id", "subset", "num_persons", "status", "reason", "prompt", "seed")


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` wrote."""

    out: Path
    configs: dict[str, Path]  # protocol -> parquet file
    n_rows: int
    n_images: int
    missing_images: list[str]  # case ids whose generated image was asked for but is not on disk


def parquet_path(out: Path, protocol: str) -> Path:
    """Where the parquet rows of one protocol (one dataset config) go."""
    return Path(out) / protocol / f"{SPLIT}-00000-of-00001.parquet"


def headline_table(data: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the headline protocol: one row per pooled metric (``*.average`` and image-level
    metrics), one column per subset. Values as written in ``results.json`` (4 decimals; ``N/A`` for null)."""
    metrics = data["metrics"].get(str(data["protocol"]), {})
    subsets = list(metrics)
    keys: list[str] = []
    for sub in subsets:
        for key in metrics[sub]:
            if key not in keys and ("." not in key or key.endswith(".average")):
                keys.append(key)
    rows = []
    for key in keys:
        cells = []
        for sub in subsets:
            entry = metrics[sub].get(key)
            value = None if entry is None else entry.get("value")
            cells.append("N/A" if value is None else f"{float(value):.4f}")
        rows.append([key, *cells])
    return ["metric", *subsets], rows


def _judge(data: Mapping[str, Any]) -> str | None:
    card = ((data.get("scorers") or {}).get("vlm-judge") or {}).get("card") or {}
    judge = card.get("judge") if isinstance(card, Mapping) else None
    return str(judge) if judge else None


def card_metadata(data: Mapping[str, Any]) -> dict[str, Any]:
    """The ``mbench`` block of the card's YAML: what ran and the key that decides comparability."""
    key = run_key(data, label=str(data["model"]))
    prof = data.get("profile")
    header, rows = headline_table(data)
    return {
        "model": str(data["model"]),
        "bench": {"id": str(data["bench"]["id"]), "manifest_sha256": data["bench"].get("manifest_sha256"),
                  "n_cases": data["bench"].get("n_cases")},
        "profile": prof.get("name") if isinstance(prof, Mapping) else prof,
        "protocol": str(data["protocol"]),
        "judge": _judge(data),
        "toolkit_version": data.get("mbench_version"),
        "reportable": bool(data.get("reportable", True)),
        "comparability_key": {f.name: _plain(getattr(key, f.name)) for f in dataclasses.fields(key)
                              if f.name not in ("label", "is_paper")},
        "headline": {row[0]: {sub: (None if v == "N/A" else float(v)) for sub, v in zip(header[1:], row[1:])}
                     for row in rows},
    }


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _frame(rows: Sequence[Mapping[str, Any]], run_dir: Path, protocol: str, with_images: bool) -> "pd.DataFrame":
    import pandas as pd

    records = []
    for row in rows:
        view = case_view(row, run_dir, protocol)
        rec: dict[str, Any] = {
            "case_id": view.id, "subset": view.subset, "num_persons": row.get("num_persons"),
            "status": view.status, "reason": view.reason or None, "prompt": view.prompt or None, "seed": row.get("seed"),
        }
        rec.update(view.metrics)
        if with_images:
            rec[IMAGE_COLUMN] = view.generated
        records.append(rec)
    frame = pd.DataFrame.from_records(records)
    metric_cols = sorted(c for c in frame.columns if c not in BASE_COLUMNS and c != IMAGE_COLUMN)
    for col in metric_cols:
        frame[col] = frame[col].astype("float64")
    for col in ("num_persons", "seed"):
        if col in frame:
            frame[col] = frame[col].astype("Int64")
    return frame[[c for c in BASE_COLUMNS if c in frame] + metric_cols
                 + ([IMAGE_COLUMN] if with_images else [])]


def _write_parquet(frame: "pd.DataFrame", path: Path, with_images: bool) -> tuple[int, list[str]]:
    """Write through ``datasets`` so the schema carries its features (the ``Image`` column decodes as one)."""
    from datasets import Dataset, Features, Image, Value

    missing: list[str] = []
    n_images = 0
    if with_images:
        cells = []
        for cid, p in zip(frame["case_id"], frame[IMAGE_COLUMN]):
            if p is None or not Path(p).is_file():
                missing.append(str(cid))
                cells.append(None)
            else:
                cells.append({"bytes": Path(p).read_bytes(), "path": Path(p).name})
                n_images += 1
        frame = frame.assign(**{IMAGE_COLUMN: cells})
    features = {}
    for col in frame.columns:
        if col == IMAGE_COLUMN:
            features[col] = Image()
        elif col in ("num_persons", "seed"):
            features[col] = Value("int64")
        elif col in ("case_id", "subset", "status", "reason", "prompt"):
            features[col] = Value("string")
        else:
            features[col] = Value("float64")
    from datasets.utils import logging as ds_logging

    ds = Dataset.from_pandas(frame, features=Features(features), preserve_index=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    bars = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()  # one "wrote ..." line per export instead of a bar per parquet file
    try:
        ds.to_parquet(str(path))
    finally:
        if bars:
            ds_logging.enable_progress_bar()
    return n_images, missing


def _card_text(data: Mapping[str, Any], protocols: Sequence[str], meta: Mapping[str, Any], with_images: bool) -> str:
    from huggingface_hub import DatasetCard, DatasetCardData

    headline = str(data["protocol"])
    configs = [{"config_name": p, "data_files": [{"split": SPLIT, "path": f"{p}/*.parquet"}],
                **({"default": True} if p == headline else {})} for p in protocols]
    card_data = DatasetCardData(
        pretty_name=f"mbench run: {data['model']} on {data['bench']['id']}",
        tags=["multiid-bench", "evaluation", "identity-preservation"],
        configs=configs, mbench=dict(meta),
    )
    header, rows = headline_table(data)
    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                      + ["| " + " | ".join(r) + " |" for r in rows])
    counts = data.get("counts") or {}
    bench = data["bench"]
    body = f"""
# mbench run: {data['model']}

Evaluation results of **{data['model']}** on **{bench['id']}** (manifest sha256 `{bench.get('manifest_sha256')}`),
made with multiid-bench {data.get('mbench_version', '?')}, face profile `{meta['profile']}`, headline protocol
`{headline}`{'' if meta['judge'] is None else f", judge `{meta['judge']}`"}.
{'' if meta['reportable'] else chr(10) + '**Not reportable**: a `--limit` run, never ranked in a leaderboard.' + chr(10)}
Cases: {counts.get('expected', '?')} expected, {counts.get('ok', '?')} ok, {counts.get('failed', '?')} failed.

## Headline ({headline} protocol)

{table}

## Files

- `results.json`: every aggregate (both protocols, all subsets, CIs, provenance); `run.json`: the run's plan.
- `cases.jsonl`: one row per case, as the runner wrote it (the source of the parquet view).
- `<protocol>/*.parquet`: one config per protocol ({', '.join(f'`{p}`' for p in protocols)}), split `{SPLIT}`,
  one row per case with its per-case metrics{'' if not with_images else ' and the generated image (`image`)'}.

## Use

```python
import datasets
rows = datasets.load_dataset("THIS_REPO_OR_FOLDER", "{headline}", split="{SPLIT}")
```

`mbench leaderboard hf://USER/NAME` (or this folder) ranks the run next to others; `mb.load_run(folder)`
reads it in Python. Rows are ranked only against runs with the same `comparability_key` (YAML above).
"""
    return str(DatasetCard("---\n" + card_data.to_yaml() + "\n---\n" + body))


def export_run(run: str | Path | RunResult, out: str | Path, *, with_images: bool = False,
               overwrite: bool = False) -> ExportResult:
    """Write ``run`` (a run folder or its ``results.json``) as a Hugging Face dataset folder ``out``.

    Args:
        run: the run folder (needs ``results.json`` and its case rows).
        out: the folder to write; must be empty or absent unless ``overwrite``.
        with_images: add the generated images to the parquet rows (``Image`` column). A case whose image
            is not on disk gets a null cell, and its id is listed in the result (and logged).
        overwrite: replace the files mbench writes in an existing ``out``.

    Raises:
        ConfigError: ``out`` is not empty (and not ``overwrite``), or is the run folder itself.
        MissingDataError / BadInputError: no valid ``results.json`` or no case rows.
    """
    from multiid_bench.leaderboard.store import load_cases

    res = run if isinstance(run, RunResult) else load_results(run)
    out = Path(out)
    if out.resolve() == res.run_dir.resolve():
        raise ConfigError(f"--out {out} is the run folder itself; export to another folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"{out} exists and is not empty; pass --overwrite or choose an empty folder")
    rows = load_cases(res)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(res.path, out / run_folder.RESULTS_FILE)
    if (res.run_dir / run_folder.RUN_FILE).is_file():
        shutil.copyfile(res.run_dir / run_folder.RUN_FILE, out / run_folder.RUN_FILE)
    from multiid_bench._io import atomic_write_bytes

    import json

    atomic_write_bytes(out / ROWS_FILE, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode("utf-8"))
    protocols = list(res.data["metrics"])
    configs: dict[str, Path] = {}
    n_images, missing = 0, []
    for protocol in protocols:
        path = parquet_path(out, protocol)
        n, miss = _write_parquet(_frame(rows, res.run_dir, protocol, with_images), path, with_images)
        configs[protocol] = path
        n_images, missing = max(n_images, n), sorted(set(missing) | set(miss))
    if missing:
        log.warning("%d case(s) have no generated image on disk (null image cell): %s", len(missing),
                    ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    meta = card_metadata(res.data)
    atomic_write_bytes(out / CARD_FILE, _card_text(res.data, protocols, meta, with_images).encode("utf-8"))
    return ExportResult(out=out, configs=configs, n_rows=len(rows), n_images=n_images, missing_images=missing)
