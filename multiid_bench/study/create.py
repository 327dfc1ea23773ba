"""``mbench study create``: pick the trials, copy what the page shows, write the study's definition.

The paper (appendix H) drew 100 single-person cases, 100 two-person cases and all three- and four-person
cases at random; :data:`PAPER_PER_SUBSET` is that default (our bench folds 3 and 4 persons into ``p3``).
Sampling is seeded and draws only among cases for which *every* run has an image (the others are listed
on the console and stored in the study). Files are copied under content-addressed names
(``media/<sha256>.<ext>``): a URL never names a model, so raters stay blind.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from multiid_bench.errors import BadInputError, ConfigError, MissingDataError, NotComparableError
from multiid_bench.study import db
from multiid_bench.study.criteria import CRITERIA, INSTRUCTIONS_VERSION, OVERVIEW

if TYPE_CHECKING:
    import sqlite3

    from multiid_bench.data.case import Bench
    from multiid_bench.leaderboard.store import RunResult

__all__ = ["PAPER_PER_SUBSET", "StudyPlan", "copy_media", "create_study", "parse_per_subset", "results_digest",
           "run_comparability_key"]

log = logging.getLogger(__name__)

#: The paper's sampling: 100 p1, 100 p2, every p3 (three and four persons).
PAPER_PER_SUBSET: dict[str, int | None] = {"p1": 100, "p2": 100, "p3": None}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


@dataclass
class StudyPlan:
    """What ``create_study`` did: the trials per subset, the cases left out and why, the notes printed."""

    folder: Path
    runs: list[str]
    trials: dict[str, int]
    excluded: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_per_subset(text: str | None) -> dict[str, int | None]:
    """``"p1=100,p2=100,p3=all"`` -> ``{"p1": 100, "p2": 100, "p3": None}`` (None = all); ``None`` -> the paper's.

    >>> parse_per_subset("p1=3,p3=all")
    {'p1': 3, 'p3': None}
    """
    from multiid_bench.data.case import SUBSETS

    if text is None:
        return dict(PAPER_PER_SUBSET)
    out: dict[str, int | None] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or name not in SUBSETS:
            raise ConfigError(f"--per-subset: {part!r} is not SUBSET=N|all with SUBSET one of {', '.join(SUBSETS)} "
                              "(p3 holds the three- and four-person cases)")
        if value == "all":
            out[name] = None
        elif value.isdigit() and int(value) > 0:
            out[name] = int(value)
        else:
            raise ConfigError(f"--per-subset: {part!r}: the count must be a positive integer or 'all'")
    if not out:
        raise ConfigError("--per-subset is empty; e.g. p1=100,p2=100,p3=all")
    return out


def run_comparability_key(run: "RunResult") -> dict[str, Any]:
    """The run's comparability key (:func:`multiid_bench.leaderboard.comparability.run_key`) as JSON data."""
    from multiid_bench.leaderboard.comparability import run_key

    key = run_key(run.data, label=run.label())
    return json.loads(json.dumps(dataclasses.asdict(key)))  # tuples -> lists, as stored and read back


def results_digest(run: "RunResult") -> str:
    """sha256 of the run's parsed ``results.json`` (canonical JSON): tells a re-scored run from the one rated."""
    return hashlib.sha256(json.dumps(run.data, sort_keys=True).encode("utf-8")).hexdigest()


def _check_comparable(runs: Sequence["RunResult"]) -> None:
    from multiid_bench.leaderboard.comparability import differences, run_key

    first = run_key(runs[0].data, label=runs[0].label())
    problems = []
    for run in runs[1:]:
        why = differences(first, run_key(run.data, label=run.label()))
        if why:
            problems.append(f"{run.label()} vs {runs[0].label()}: {'; '.join(why)}")
    if problems:
        raise NotComparableError("a study's runs must be made the same way (Table 7 ranks their metrics per "
                                 "trial):\n  " + "\n  ".join(problems) + "\nRe-run them with one bench, profile "
                                 "and protocol.")


def _bench_of(run: "RunResult") -> "Bench":
    """The bench the run was made on, through the data loaders, checked against the run's recorded hash."""
    from multiid_bench.data.loaders import load_bench
    from multiid_bench.runner import run_folder

    run_json = run_folder.read_run(run.run_dir)
    config = run_json["config"]
    bench = load_bench(str(config["bench"]), cache_dir=config.get("cache_dir"), strict=False)
    # run.json keeps the hash of the bench as loaded (before reference crops changed it); results.json the final one
    recorded = (run_json.get("bench") or {}).get("source_sha256") or run.bench.get("manifest_sha256")
    if recorded and bench.manifest_sha256 != recorded:
        raise BadInputError(f"{run.run_dir}: the bench {config['bench']!r} now has manifest {bench.manifest_sha256[:12]}, "
                            f"the run was made on {str(recorded)[:12]}; the study would show other GT photos or "
                            "prompts. Re-run the model on the current bench.")
    return bench


def copy_media(con: "sqlite3.Connection", folder: Path, src: Path, kind: str) -> str:
    """Copy ``src`` to ``media/<sha256><suffix>`` (once) and list it in ``media``; returns the name the page uses."""
    from multiid_bench._io import atomic_write_bytes

    suffix = src.suffix.lower()
    if suffix not in _IMAGE_SUFFIXES:
        raise BadInputError(f"{src}: the study page shows {', '.join(sorted(_IMAGE_SUFFIXES))} files only")
    data = src.read_bytes()
    name = hashlib.sha256(data).hexdigest() + suffix
    target = folder / db.MEDIA_DIR / name
    if not target.is_file():
        atomic_write_bytes(target, data)
    con.execute("INSERT OR IGNORE INTO media (name, kind, source) VALUES (?, ?, ?)", (name, kind, str(src)))
    return name


def _remove_partial(folder: Path, made_folder: bool, made_media: bool) -> None:
    """A failed create leaves nothing behind that a second try would take for a study."""
    import shutil

    if made_folder:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db.db_path(folder)}{suffix}").unlink(missing_ok=True)
    if made_media:
        shutil.rmtree(folder / db.MEDIA_DIR, ignore_errors=True)


def create_study(run_dirs: Sequence[str | Path], out: str | Path, *,
                 per_subset: Mapping[str, int | None] | None = None, seed: int = 0) -> StudyPlan:
    """Create the study folder ``out`` (``study.sqlite`` + ``media/``) from two or more run folders.

    Raises:
        ConfigError: fewer than two runs, two runs of one model, ``out`` already holds a study.
        NotComparableError: the runs were made under different benches, profiles or protocols.
        BadInputError: a run's bench changed since the run; no case has an image in every run.
    """
    import numpy as np

    from multiid_bench.leaderboard.cases import case_view
    from multiid_bench.leaderboard.paper import canonical_model
    from multiid_bench.leaderboard.store import load_results
    from multiid_bench.runner import run_folder

    if len(run_dirs) < 2:
        raise ConfigError("a study compares methods: give at least two run folders")
    folder = Path(out)
    if db.db_path(folder).exists():
        raise ConfigError(f"{folder} already holds a study ({db.DB_NAME}); choose another --out or delete it")
    runs = [load_results(p) for p in run_dirs]
    labels = [canonical_model(r.model) for r in runs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"two runs of the same model ({', '.join(labels)}): a study ranks different methods; "
                          "give one run per model")
    _check_comparable(runs)
    bench = _bench_of(runs[0])
    per_subset = dict(PAPER_PER_SUBSET if per_subset is None else per_subset)
    notes: list[str] = []

    views: list[dict[str, Any]] = []
    for run in runs:
        views.append({cv.id: cv for cv in (case_view(r, run.run_dir) for r in run_folder.read_rows(run.run_dir))})
    eligible: dict[str, list[Any]] = {}
    excluded: list[dict[str, str]] = []
    for case in bench.cases:
        missing = []
        for label, by_id in zip(labels, views):
            cv = by_id.get(case.id)
            if cv is None:
                missing.append(f"{label}: no row")
            elif cv.generated is None or not cv.generated.is_file():
                missing.append(f"{label}: no image ({cv.status}{': ' + cv.reason if cv.reason else ''})")
        if missing:
            excluded.append({"case_id": case.id, "reason": "; ".join(missing)})
        elif case.subset in per_subset:
            eligible.setdefault(case.subset, []).append(case)
    rng = np.random.default_rng(seed)
    chosen = []
    taken: dict[str, int] = {}
    for subset, want in per_subset.items():
        pool = eligible.get(subset, [])
        k = len(pool) if want is None else min(want, len(pool))
        if want is not None and want > len(pool):
            notes.append(f"{subset}: {want} requested, only {len(pool)} cases have an image in every run; all taken")
        idx = sorted(rng.choice(len(pool), size=k, replace=False).tolist()) if k else []
        chosen += [pool[i] for i in idx]
        taken[subset] = k
    if not chosen:
        raise BadInputError(f"no case of subsets {', '.join(per_subset)} has an image in every run "
                            f"({len(excluded)} case(s) left out); check the runs with 'mbench report'")
    order = rng.permutation(len(chosen)).tolist()
    if excluded:
        notes.append(f"{len(excluded)} bench case(s) left out (not in every run): "
                     + ", ".join(e["case_id"] for e in excluded[:10]) + (" ..." if len(excluded) > 10 else ""))

    made_folder, made_media = not folder.exists(), not (folder / db.MEDIA_DIR).exists()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / db.MEDIA_DIR).mkdir(exist_ok=True)
    con = db.connect(folder, must_exist=False)
    try:
        con.execute("BEGIN IMMEDIATE")
        db.create_schema(con)
        run_ids = []
        for run, label in zip(runs, labels):
            sha = results_digest(run)
            cur = con.execute("INSERT INTO runs (label, model, run_dir, comparability, results_sha256) "
                              "VALUES (?, ?, ?, ?, ?)", (label, run.model, str(run.run_dir.resolve()),
                                                         json.dumps(run_comparability_key(run)), sha))
            run_ids.append(cur.lastrowid)
        ref_source = set()
        for position, i in enumerate(order):
            case = chosen[i]
            first = views[0][case.id]
            refs = first.refs if first.refs and all(p.is_file() for p in first.refs) else list(case.refs)
            ref_source.add("the reference crops the first run recorded" if refs is first.refs
                           else "the bench's reference images")
            if case.gt is None or not Path(case.gt).is_file():
                raise MissingDataError(f"case {case.id}: the bench has no ground-truth photo at {case.gt}; the "
                                       "study shows it next to the results")
            gt = copy_media(con, folder, Path(case.gt), "gt")
            ref_names = [copy_media(con, folder, Path(p), "ref") for p in refs]
            cur = con.execute("INSERT INTO trials (position, case_id, subset, prompt, gt_media, ref_media) "
                              "VALUES (?, ?, ?, ?, ?, ?)", (position, case.id, case.subset, case.prompt, gt,
                                                            json.dumps(ref_names)))
            for run_id, by_id in zip(run_ids, views):
                media = copy_media(con, folder, by_id[case.id].generated, "result")
                con.execute("INSERT INTO results (trial_id, run_id, media) VALUES (?, ?, ?)",
                            (cur.lastrowid, run_id, media))
        meta = {
            "seed": seed, "per_subset_requested": {k: ("all" if v is None else v) for k, v in per_subset.items()},
            "per_subset_taken": taken, "excluded_cases": excluded, "notes": notes,
            "criteria": [dataclasses.asdict(c) for c in CRITERIA], "overview": list(OVERVIEW),
            "instructions_version": INSTRUCTIONS_VERSION, "bench": {"id": bench.id, "manifest_sha256": bench.manifest_sha256},
            "reference_source": sorted(ref_source), "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        from multiid_bench._version import __version__

        meta["mbench_version"] = __version__
        for key, value in meta.items():
            db.set_meta(con, key, value)
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        con.close()
        _remove_partial(folder, made_folder, made_media)
        raise
    con.close()
    if len(ref_source) == 1 and "bench" in next(iter(ref_source)):
        notes.append("references shown: the bench's reference images (the runs recorded no crops)")
    return StudyPlan(folder=folder, runs=labels, trials=taken, excluded=excluded, notes=notes)
