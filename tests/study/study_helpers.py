"""Independent recomputation of a Table 7 row (straight from the database and the runs' cases.jsonl)."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path


def scipy_table7(study: Path, runs: list[Path], criterion: str, metric: str, protocol: str = "strict") -> dict:
    """Mean stars per (case, run) vs the per-case metric (negated: lower is better for copy-paste), ranked within
    each case, then scipy's pearsonr / spearmanr / kendalltau."""
    from scipy.stats import kendalltau, pearsonr, rankdata, spearmanr

    con = sqlite3.connect(study / "study.sqlite")
    human = {}
    for case, run_dir, stars in con.execute(
            "SELECT t.case_id, r.run_dir, AVG(g.stars) FROM ratings g JOIN trials t ON t.id = g.trial_id JOIN runs r "
            "ON r.id = g.run_id WHERE g.criterion = ? GROUP BY 1, 2", (criterion,)):
        human[(case, Path(run_dir).name)] = stars
    con.close()
    base, fm = metric.split(".")
    sign = -1.0 if base == "copy_paste" else 1.0
    machine = {}
    for run in runs:
        for line in (run / "cases.jsonl").read_text().splitlines():
            row = json.loads(line)
            value = ((row.get("scores") or {}).get(protocol) or {}).get(fm, {}).get(base)
            if value is not None:
                machine[(row["case_id"], run.name)] = sign * value
    xs: list[float] = []
    ys: list[float] = []
    for case in sorted({c for c, _ in human}):
        keys = [(case, r.name) for r in runs if (case, r.name) in human and (case, r.name) in machine]
        if len(keys) >= 2:
            xs += list(rankdata([human[k] for k in keys]))
            ys += list(rankdata([machine[k] for k in keys]))
    return {"n": len(xs), "pearson": float(pearsonr(xs, ys).statistic),
            "spearman": float(spearmanr(xs, ys).statistic), "kendall": float(kendalltau(xs, ys).statistic)}
