"""Numbers **reported in the paper**, loaded from ``leaderboard/data`` as tidy tables with provenance.

Every row returned here has ``provenance == "paper"`` and a ``source`` such as ``"paper Table 1a"``; the
values are the printed text parsed to float (``N/A`` becomes NaN, the printed text is kept in
``value_text``). Nothing here is measured, and nothing measured is ever written here.
"""
from __future__ import annotations

import csv
import json
import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable

from multiid_bench.leaderboard.data import DATA_DIR
from multiid_bench.metrics.cards import FACE_MODEL_METRICS

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PAPER",
    "PER_FACE_MODEL",
    "canonical_model",
    "load_paper_correlations",
    "load_paper_results",
    "metric_key",
    "model_kind",
    "normalise_subset",
    "paper_meta",
    "paper_table_for",
]

PAPER = "paper"
#: Tables whose rows compare methods (3 and 6 are ablations of WithAnyone; 1b is OmniContext).
MAIN_TABLES = ("1a", "2a", "2b", "5")


def normalise_subset(name: str) -> str:
    """The one spelling of a subset name for matching: lower case, ``-``/space as ``_``.

    The paper's labels (``single-character``) and OmniContext's task types (``single_character``) name the
    same subset; every view matches subset names through this function.

    Example:
        >>> normalise_subset("Single-Character"), normalise_subset("single_character"), normalise_subset("p1")
        ('single_character', 'single_character', 'p1')
    """
    return "_".join(str(name).strip().lower().replace("-", " ").replace("_", " ").split())


@lru_cache(maxsize=1)
def paper_meta() -> dict[str, Any]:
    """``paper.json``: citation, per-table captions, subset basis, copy-paste rules, oddities, model ids."""
    with open(DATA_DIR / "paper.json", encoding="utf-8") as f:
        return json.load(f)


#: Metrics the runner writes per face model (``<metric>.<face model>`` and ``<metric>.average``): the
#: identity metrics and the Sim(GT)-filtered copy-paste columns built from them.
PER_FACE_MODEL = frozenset(FACE_MODEL_METRICS) | {"copy_paste_ranked", "copy_paste_ranked_fm"}


def metric_key(metric: str, face_model: str | None) -> str:
    """The results.json key a paper cell is compared with (``sim_gt.average``, ``sim_gt.arcface``, ``clip_t``).

    The paper's CP columns are Sim(GT)-filtered ("for Copy-Paste ranking, only cases with Sim(GT) > 0.40
    are considered"), so they are transcribed as ``copy_paste_ranked`` (Tables 1a, 2a, 2b, 3, 6) and
    ``copy_paste_ranked_fm`` (Table 5's per-model thresholds) and sit next to the measured column of the
    same definition, never next to the unfiltered ``copy_paste``.
    """
    if metric in PER_FACE_MODEL:
        return f"{metric}.{face_model or 'average'}"
    return metric


@lru_cache(maxsize=1)
def _alias_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for model_id, info in paper_meta()["models"].items():
        for name in (model_id, *info.get("labels", ()), *info.get("aliases", ())):
            table[_norm(name)] = model_id
    return table


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def canonical_model(name: str) -> str:
    """Map a paper label or adapter name (``"GPT-4o Native"``, ``"GPT"``, ``"InfU"``) to one model id.

    Names the paper does not know are returned unchanged, so user models keep their own names.
    """
    return _alias_table().get(_norm(name), name)


def model_kind(model: str) -> str:
    """``baseline``, ``ours`` (WithAnyone), ``limit`` (GT / copy-reference oracles) or ``other``."""
    info = paper_meta()["models"].get(canonical_model(model))
    return info["kind"] if info else "other"


def paper_table_for(subset: str | None, face_model: str | None) -> str | None:
    """The paper table that matches a leaderboard view: Table 5 per face model, else 1a/2a/2b by subset."""
    meta = paper_meta()
    if face_model and face_model != "average":
        return meta["face_model_table"] if face_model in ("arcface", "adaface", "facenet") else None
    return meta["main_tables"].get(normalise_subset(subset or ""))


def _display(row: dict[str, str]) -> str:
    label = row["row_label"]
    if row["table"] == "6":
        return row["group"] if label == "-" else f"{row['group']} {label}"
    if label in ("Ours", "Full Setting"):
        return f"WithAnyone ({label})"
    return label


def _rows(name: str) -> list[dict[str, str]]:
    with open(DATA_DIR / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _to_float(text: str) -> float:
    return math.nan if text.strip().upper() == "N/A" or not text.strip() else float(text)


def load_paper_results(tables: Iterable[str] | None = None) -> "pd.DataFrame":
    """All printed cells of Tables 1a, 1b, 2a, 2b, 3, 5, 6 as one tidy frame (one row per cell).

    Args:
        tables: keep only these table ids (``"1a"``, ``"5"`` ...); all when ``None``.

    Returns:
        Columns ``provenance`` (always ``"paper"``), ``source``, ``table``, ``benchmark``, ``subset``,
        ``subset_stated``, ``group``, ``row_label``, ``display``, ``model``, ``row_kind``, ``metric``,
        ``face_model``, ``metric_key``, ``column_label``, ``value_text``, ``value`` (float, NaN for N/A),
        ``note``.

    Example:
        >>> df = load_paper_results(["1a"])
        >>> float(df[(df.model == "withanyone") & (df.metric == "sim_gt")].value.iloc[0])
        0.46
    """
    import pandas as pd

    wanted = set(tables) if tables is not None else None
    records = []
    for row in _rows("paper_results.csv"):
        if wanted is not None and row["table"] not in wanted:
            continue
        face_model = row["face_model"] or None
        records.append(
            {
                "provenance": PAPER,
                "source": f"paper Table {row['table']}",
                "table": row["table"],
                "benchmark": row["benchmark"],
                "subset": row["subset"],
                "subset_stated": row["subset_stated"] == "yes",
                "protocol": "",  # the paper's own; never equal to a measured protocol name
                "group": row["group"],
                "row_label": row["row_label"],
                "display": _display(row),
                "model": row["model"],
                "row_kind": row["row_kind"],
                "metric": row["metric"],
                "face_model": face_model,
                "metric_key": metric_key(row["metric"], face_model),
                "column_label": row["column_label"],
                "value_text": row["value"],
                "value": _to_float(row["value"]),
                "note": row["note"],
            }
        )
    if wanted is not None and not records:
        raise KeyError(f"no paper table among {sorted(wanted)}; known: 1a, 1b, 2a, 2b, 3, 5, 6")
    return pd.DataFrame.from_records(records)


def load_paper_correlations() -> "pd.DataFrame":
    """Table 7: the paper's correlations between machine and human rankings (value and p-value as floats)."""
    import pandas as pd

    df = pd.DataFrame.from_records(_rows("paper_correlations.csv"))
    df["value_text"], df["p_value_text"] = df["value"], df["p_value"]
    df["value"] = df["value"].astype(float)
    df["p_value"] = df["p_value"].astype(float)
    df.insert(0, "provenance", PAPER)
    return df
