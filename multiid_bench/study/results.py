"""``mbench study results``: Fig. 8's data, inter-rater agreement and Table 7 from a study database.

- **Fig. 8** (per criterion and method): the mean stars and the mean *rank* (within each rater's trial,
  rank 1 = most stars, ties share the average rank), each with a 95 % percentile bootstrap CI that
  resamples trials (a trial's value is the mean over the raters who saved it).
- **Agreement** (per criterion): Kendall's W on the within-trial rankings, computed per trial saved by
  at least two raters and averaged; Krippendorff's alpha (ordinal) over every (trial, result) unit, with
  the numbers of raters, trials and answers behind each.
- **Table 7**: the human value of a (case, method) is its mean stars over raters; the machine value is the
  run's per-case metric (copy-paste for the copy-paste criterion, Sim(GT) for identity similarity, per face
  model and averaged); both are ranked within the trial and correlated with
  :func:`multiid_bench.leaderboard.correlate.correlate` (``orient=True``: a lower-is-better metric is
  negated so agreement is positive). ``mbench correlate STUDY --within-case-ranks`` gives the same numbers.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from multiid_bench.errors import BadInputError
from multiid_bench.study import db
from multiid_bench.study.criteria import CRITERIA, MACHINE_METRIC

if TYPE_CHECKING:
    import pandas as pd

    from multiid_bench.leaderboard.store import RunResult

__all__ = ["StudyResults", "agreement_table", "human_rows", "load_ratings", "method_table", "study_results",
           "study_runs", "table7"]


@dataclass
class StudyResults:
    methods: "pd.DataFrame"
    agreement: "pd.DataFrame"
    table7: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def load_ratings(study: str | Path) -> "pd.DataFrame":
    """Every saved answer: rater, trial, case_id, method, criterion, stars (saved trials only)."""
    import pandas as pd

    con = db.connect(study)
    try:
        rows = con.execute(
            "SELECT g.rater_id AS rater, g.trial_id AS trial, t.case_id, t.subset, r.label AS method, g.criterion, "
            "g.stars FROM ratings g JOIN trials t ON t.id = g.trial_id JOIN runs r ON r.id = g.run_id "
            "JOIN submissions s ON s.rater_id = g.rater_id AND s.trial_id = g.trial_id").fetchall()
    finally:
        con.close()
    cols = ["rater", "trial", "case_id", "subset", "method", "criterion", "stars"]
    return pd.DataFrame([tuple(r) for r in rows], columns=cols)


def _with_ranks(ratings: "pd.DataFrame") -> "pd.DataFrame":
    out = ratings.copy()
    out["rank"] = out.groupby(["rater", "trial", "criterion"])["stars"].rank(ascending=False, method="average")
    return out


def method_table(ratings: "pd.DataFrame", *, seed: int = 0, n_resamples: int = 2000) -> "pd.DataFrame":
    """Fig. 8's data: per criterion and method, mean stars and mean within-trial rank with bootstrap CIs."""
    import pandas as pd

    from multiid_bench.metrics.stats import bootstrap_ci

    ranked = _with_ranks(ratings)
    rows = []
    for crit in CRITERIA:
        sub = ranked[ranked["criterion"] == crit.id]
        for method, m in sub.groupby("method", sort=True):
            per_trial = m.groupby("trial")[["stars", "rank"]].mean()
            row: dict[str, Any] = {"criterion": crit.id, "method": method, "trials": len(per_trial),
                                   "answers": len(m), "raters": int(m["rater"].nunique())}
            for col in ("stars", "rank"):
                ci = bootstrap_ci(per_trial[col].tolist(), n_resamples=n_resamples, seed=seed)
                row[f"mean_{col}"] = float(per_trial[col].mean())
                row[f"{col}_ci95_lo"], row[f"{col}_ci95_hi"] = ci if ci else (None, None)
            rows.append(row)
    return pd.DataFrame(rows)


def agreement_table(ratings: "pd.DataFrame") -> "pd.DataFrame":
    """Per criterion: mean Kendall's W over trials with >= 2 raters, Krippendorff's alpha (ordinal), counts."""
    import numpy as np
    import pandas as pd

    from multiid_bench.study.agreement import kendalls_w, krippendorff_alpha

    rows = []
    for crit in CRITERIA:
        sub = ratings[ratings["criterion"] == crit.id]
        ws = []
        for _, t in sub.groupby("trial"):
            grid = t.pivot_table(index="rater", columns="method", values="stars")
            if len(grid) >= 2 and grid.shape[1] >= 2 and not grid.isna().any().any():
                w = kendalls_w(grid.to_numpy())
                if not np.isnan(w):
                    ws.append(w)
        units = sub.pivot_table(index="rater", columns=["trial", "method"], values="stars")
        raters = int(sub["rater"].nunique())
        alpha = None
        if raters >= 2 and units.shape[1] >= 2 and sub["stars"].nunique() >= 2:  # one value: alpha undefined
            a = krippendorff_alpha(units.to_numpy(dtype=float), "ordinal")
            alpha = None if np.isnan(a) else a
        rows.append({"criterion": crit.id, "kendalls_w": float(np.mean(ws)) if ws else None,
                     "w_trials": len(ws), "krippendorff_alpha_ordinal": alpha, "raters": raters,
                     "trials": int(sub["trial"].nunique()), "answers": len(sub)})
    return pd.DataFrame(rows)


def human_rows(ratings: "pd.DataFrame", criterion: str) -> list[dict[str, Any]]:
    """``{case_id, model, value}`` = mean stars over raters per (case, method): the input of ``correlate``."""
    from multiid_bench.leaderboard.paper import canonical_model

    sub = ratings[ratings["criterion"] == criterion]
    if sub.empty:
        return []
    means = sub.groupby(["case_id", "method"])["stars"].mean()
    return [{"case_id": str(c), "model": canonical_model(str(m)), "value": float(v)} for (c, m), v in means.items()]


def study_runs(study: str | Path) -> tuple[list["RunResult"], list[str]]:
    """The study's runs, loaded again; refuses (``BadInputError``) when a run's comparability key changed."""
    from multiid_bench.leaderboard.store import load_results
    from multiid_bench.study.create import results_digest, run_comparability_key

    con = db.connect(study)
    try:
        recorded = con.execute("SELECT label, run_dir, comparability, results_sha256 FROM runs ORDER BY id").fetchall()
    finally:
        con.close()
    runs, notes = [], []
    for row in recorded:
        run = load_results(row["run_dir"])
        key, was = run_comparability_key(run), json.loads(row["comparability"])
        if key != was:
            changed = sorted(k for k in key if key[k] != was.get(k))
            raise BadInputError(f"{row['run_dir']}: the run's comparability key changed since the study was created "
                                f"({', '.join(changed)}); its metrics no longer describe the images the raters saw")
        if results_digest(run) != row["results_sha256"]:
            notes.append(f"{row['label']}: {run.path} was rewritten since the study was created (same key); "
                         "Table 7 uses its current per-case rows")
        runs.append(run)
    return runs, notes


def _face_models(runs: list["RunResult"]) -> list[str]:
    names: list[str] = []
    for run in runs:
        for fm in run.data.get("face_models") or []:
            name = fm.get("name") if isinstance(fm, dict) else str(fm)
            if name and name not in names:
                names.append(name)
    return names + (["average"] if len(names) > 1 else [])


def table7(ratings: "pd.DataFrame", runs: list["RunResult"]) -> list[dict[str, Any]]:
    """Machine vs human within-trial rankings per criterion and face model, with the paper's values."""
    from multiid_bench.leaderboard.correlate import correlate

    rows = []
    for criterion, base in MACHINE_METRIC.items():
        human = human_rows(ratings, criterion)
        for fm in _face_models(runs):
            metric = f"{base}.{fm}"
            row: dict[str, Any] = {"criterion": criterion, "metric": metric}
            try:
                res = correlate(human, runs, metric, within_case_ranks=True, orient=True)
            except BadInputError as e:
                row["skipped"] = str(e)
                rows.append(row)
                continue
            row.update({"n": res.n, "dropped": res.dropped, "paper_dimension": res.paper_dimension})
            for name, (value, p) in res.stats.items():
                row[name], row[f"{name}_p"] = value, p
                ref = res.paper.get(name)
                row[f"paper_{name}"], row[f"paper_{name}_p"] = (ref if ref else (None, None))
            rows.append(row)
    return rows


def study_results(study: str | Path, out: str | Path | None = None, *, seed: int = 0,
                  formats: tuple[str, ...] = ("png", "pdf")) -> StudyResults:
    """Compute everything and write ``fig8.{png,pdf}``, ``fig8.csv``, ``agreement.csv``, ``table7.csv`` and
    ``results.json`` into ``out`` (default ``STUDY/results``)."""
    import pandas as pd

    from multiid_bench.study.figure import plot_fig8

    ratings = load_ratings(study)
    if ratings.empty:
        raise BadInputError(f"{study}: no saved trials yet; share the invitation links ('mbench study invite') and "
                            "let raters save some trials first")
    methods = method_table(ratings, seed=seed)
    agreement = agreement_table(ratings)
    notes: list[str] = []
    try:
        runs, notes = study_runs(study)
        t7 = table7(ratings, runs)
    except (BadInputError, FileNotFoundError) as e:
        t7 = []
        notes.append(f"Table 7 not computed: {e}")
    folder = Path(out) if out is not None else db.db_path(study).parent / "results"
    folder.mkdir(parents=True, exist_ok=True)
    files = plot_fig8(methods, folder / "fig8", formats=formats)
    for name, frame in (("fig8.csv", methods), ("agreement.csv", agreement), ("table7.csv", pd.DataFrame(t7))):
        frame.to_csv(folder / name, index=False)
        files.append(folder / name)
    payload = {"methods": methods.to_dict("records"), "agreement": agreement.to_dict("records"), "table7": t7,
               "notes": notes, "ratings": len(ratings), "raters": int(ratings["rater"].nunique()),
               "trials": int(ratings["trial"].nunique())}
    (folder / "results.json").write_text(json.dumps(payload, indent=2, default=_json_default) + "\n", encoding="utf-8")
    files.append(folder / "results.json")
    return StudyResults(methods=methods, agreement=agreement, table7=t7, notes=notes, files=files)


def _json_default(value: Any) -> Any:
    import math

    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
