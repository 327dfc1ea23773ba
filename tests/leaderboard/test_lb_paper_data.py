"""The transcribed paper numbers: spot checks typed from every table, structure, oddities kept and noted."""
from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from multiid_bench.leaderboard.paper import (
    canonical_model,
    load_paper_correlations,
    load_paper_results,
    model_kind,
    paper_meta,
    paper_table_for,
)

PAPER_TXT = Path("/work/shared/paper/withanyone-paper.txt")


def cell(table: str, label: str, metric: str, face_model: str | None = None, group: str | None = None) -> str:
    df = load_paper_results([table])
    sel = (df.row_label == label) & (df.metric == metric)
    if face_model is not None:
        sel &= df.face_model == face_model
    if group is not None:
        sel &= df.group == group
    rows = df[sel]
    assert len(rows) == 1, (table, label, metric, len(rows))
    return rows.value_text.iloc[0]


# (table, row label, metric, face model, group, value as printed in the paper)
SPOT = [
    ("1a", "DreamO", "sim_gt", None, None, "0.454"),
    ("1a", "InstantID", "sim_ref", None, None, "0.734"),
    ("1a", "Qwen-Image-Edit", "copy_paste_ranked", None, None, "0.093"),
    ("1a", "Ours", "clip_i", None, None, "0.798"),
    ("1a", "InfU", "aesthetic", None, None, "5.359"),
    ("1a", "GT", "copy_paste_ranked", None, None, "-0.999"),
    ("1a", "Ref", "sim_ref", None, None, "1.000"),
    ("1a", "GT", "clip_t", None, None, "N/A"),
    ("1b", "GPT-4o Native", "subject_consistency", None, None, "9.06"),
    ("1b", "ID-Patch", "overall", None, None, "N/A"),
    ("2a", "GPT", "clip_t", None, None, "0.328"),
    ("2a", "UniPortrait", "blend_gt", None, None, "0.075"),
    ("2a", "Ours", "sim_gt", None, None, "0.405"),
    ("2b", "GPT", "sim_gt", None, None, "0.445"),
    ("2b", "ID-Patch", "aesthetic", None, None, "4.547"),
    ("2b", "Ours", "blend_gt", None, None, "0.045"),
    ("3", "w/o Ext. Neg.", "copy_paste_ranked", None, None, "0.074"),
    ("3", "FFHQ only", "clip_t", None, None, "0.330"),
    ("3", "Full Setting", "aesthetic", None, None, "4.883"),
    ("5", "DreamO", "sim_gt", "arcface", None, "0.315"),
    ("5", "UniPortrait", "sim_ref", "facenet", None, "0.730"),
    ("5", "Ours", "copy_paste_ranked_fm", "adaface", None, "0.150"),
    ("5", "UNO", "copy_paste_ranked_fm", "adaface", None, "0.039"),
    ("6", "w/o fixed txt", "clip_t", None, "Phase 1", "0.337"),
    ("6", "w fixed txt", "aesthetic", None, "Phase 1", "5.082"),
    ("6", "-", "sim_ref", None, "Phase 3", "0.572"),
]


@pytest.mark.parametrize("table,label,metric,fm,group,expected", SPOT)
def test_spot_checks_reproduce_the_paper(table: str, label: str, metric: str, fm: str | None, group: str | None,
                                         expected: str) -> None:
    assert cell(table, label, metric, fm, group) == expected


def test_table_sizes_and_provenance() -> None:
    df = load_paper_results()
    sizes = df.groupby("table").size().to_dict()
    # rows x printed columns: 1a 17x6, 1b 15x3 (GT/Ref empty), 2a/2b 9x7, 3 5x6, 5 9x9, 6 5x6
    assert sizes == {"1a": 102, "1b": 45, "2a": 63, "2b": 63, "3": 30, "5": 81, "6": 30}
    assert set(df.provenance) == {"paper"}
    assert df.source.str.startswith("paper Table ").all()
    assert not df.duplicated(["table", "group", "row_label", "metric", "face_model"]).any()


def test_na_is_nan_never_zero() -> None:
    df = load_paper_results(["1a"])
    gt = df[(df.row_label == "GT") & (df.metric == "aesthetic")].iloc[0]
    assert gt.value_text == "N/A" and math.isnan(gt.value)


def test_repeated_rows_kept_and_noted() -> None:
    df = load_paper_results(["2a", "2b"])
    a = df[(df.table == "2a") & (df.model == "omnigen")].set_index("metric").value
    b = df[(df.table == "2b") & (df.model == "omnigen")].set_index("metric").value
    assert a.equals(b)  # the paper prints the same OmniGen row in both subsets
    assert df[df.model == "omnigen"].note.str.contains("repeated row").all()
    t3 = load_paper_results(["3", "6"])
    wo3 = t3[(t3.table == "3") & (t3.row_label == "w/o Phase 3")].set_index("metric").value
    ph2 = t3[(t3.table == "6") & (t3.group == "Phase 2")].set_index("metric").value
    assert wo3.equals(ph2)


def test_metric_keys_and_face_models() -> None:
    df = load_paper_results(["2a", "5"])
    assert set(df[df.table == "5"].face_model) == {"arcface", "adaface", "facenet"}
    assert "sim_gt.arcface" in set(df.metric_key) and "sim_gt.average" in set(df.metric_key)
    assert "clip_t" in set(df.metric_key)


def test_meta_and_model_ids() -> None:
    meta = paper_meta()
    assert meta["status"] == "reported in the paper"
    assert meta["tables"]["5"]["subset_basis"].startswith("inferred")
    assert canonical_model("GPT-4o Native") == canonical_model("GPT") == "gpt-4o"
    assert canonical_model("InfU") == "infiniteyou" and canonical_model("my-own-model") == "my-own-model"
    assert model_kind("Ours") == "ours" and model_kind("ground-truth") == "limit" and model_kind("zzz") == "other"
    assert paper_table_for("p2", "average") == "2a" and paper_table_for("p1", "arcface") == "5"
    assert paper_table_for("all", "average") is None


def test_table7_correlations() -> None:
    df = load_paper_correlations()
    cp = df[(df.dimension == "Copy-Paste") & (df.statistic == "spearman")].iloc[0]
    assert cp.value_text == "0.4535" and cp.p_value_text == "1.26e-50"
    ids = df[(df.dimension == "ID Sim") & (df.statistic == "kendall")].iloc[0]
    assert (ids.value, ids.p_value) == (0.2423, 1.11e-25)


@pytest.mark.skipif(not PAPER_TXT.is_file(), reason=f"paper text not present at {PAPER_TXT}")
def test_every_numeric_cell_appears_on_its_printed_row() -> None:
    """Cross-check against the paper text: each row's printed values, in column order, follow its label.

        (Table 1b's cells follow 1a's on the same printed line, and 2b's follow 2a's, hence the optional
        cells between the label and the values.)
        """
    lines = PAPER_TXT.read_text(encoding="utf-8").splitlines()
    df = load_paper_results()
    checked = 0
    for (table, group, label, fm_order), grp in df.assign(fm_order="").groupby(
            ["table", "group", "row_label", "fm_order"], sort=False):
        values = "\t".join(grp.value_text)
        hits = [ln for ln in lines if re.search(rf"(^|\t){re.escape(label)}\t([^\t]*\t)*?{re.escape(values)}(\t|$)", ln)]
        assert hits, f"Table {table} row {label!r}: '{values}' not found in the paper text"
        checked += 1
    assert checked == 17 + 15 + 9 + 9 + 5 + 9 + 5


def test_module_doctests_pass() -> None:
    """The leaderboard package is outside pytest's doctest paths, so its examples are run here."""
    import doctest

    import multiid_bench.leaderboard as lb
    import multiid_bench.leaderboard.paper as paper

    for mod in (lb, paper):
        res = doctest.testmod(mod)
        assert res.attempted > 0 and res.failed == 0, mod.__name__
