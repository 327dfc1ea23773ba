"""Agreement and ranking statistics against published worked examples, hand computation and scipy."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import friedmanchisquare

from multiid_bench.errors import ConfigError
from multiid_bench.study.agreement import kendalls_w, krippendorff_alpha
from multiid_bench.study.create import parse_per_subset
from multiid_bench.study.results import agreement_table, human_rows, method_table

NAN = float("nan")
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the worked example with missing values:
# 4 observers x 12 units. Published: nominal .743, ordinal .815, interval .849, ratio .797.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
]


@pytest.mark.parametrize("level,published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849),
                                              ("ratio", 0.797)])
def test_krippendorff_alpha_reproduces_the_published_worked_example(level: str, published: float) -> None:
    assert krippendorff_alpha(KRIPPENDORFF_2011, level) == pytest.approx(published, abs=5e-4)


def test_kendalls_w_hand_computed_without_ties() -> None:
    # rank sums 4, 6, 8, 12 (mean 7.5): S = 3.5^2 + 1.5^2 + 0.5^2 + 4.5^2 = 35; W = 12*35 / (3^2 (4^3 - 4)) = 7/9
    ranks = [[1, 2, 3, 4], [2, 1, 3, 4], [1, 3, 2, 4]]
    assert kendalls_w(ranks) == pytest.approx(7 / 9, abs=1e-12)


def test_kendalls_w_with_ties_equals_friedman_over_m_n_minus_1() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        stars = rng.integers(1, 6, size=(5, 4))  # 5 raters x 4 methods, many ties
        if any(len(set(r)) == 1 for r in stars):
            continue
        chi2 = friedmanchisquare(*stars.T).statistic
        assert kendalls_w(stars) == pytest.approx(chi2 / (5 * 3), rel=1e-9)


def test_kendalls_w_bounds_and_shape_errors() -> None:
    assert kendalls_w([[1, 2, 3], [1, 2, 3]]) == 1.0
    assert kendalls_w([[1, 2, 3], [3, 2, 1]]) == 0.0
    assert math.isnan(kendalls_w([[2, 2, 2], [1, 1, 1]]))
    with pytest.raises(ValueError, match="raters >= 2"):
        kendalls_w([[1, 2, 3]])


def _ratings(rows: list[tuple[int, int, str, int]], criterion: str = "id_sim") -> pd.DataFrame:
    return pd.DataFrame([{"rater": r, "trial": t, "case_id": f"c{t}", "subset": "p1", "method": m,
                          "criterion": criterion, "stars": s} for r, t, m, s in rows])


def test_method_table_mean_ranks_and_stars_by_hand() -> None:
    # trial 1: rater 1 gives a=5 b=3 c=3 -> ranks a 1, b 2.5, c 2.5; rater 2 a=2 b=4 c=1 -> a 2, b 1, c 3
    # trial 2: rater 1 a=1 b=2 c=3 -> a 3, b 2, c 1
    ratings = _ratings([(1, 1, "a", 5), (1, 1, "b", 3), (1, 1, "c", 3), (2, 1, "a", 2), (2, 1, "b", 4),
                        (2, 1, "c", 1), (1, 2, "a", 1), (1, 2, "b", 2), (1, 2, "c", 3)])
    table = method_table(ratings, n_resamples=200).set_index("method")
    # per trial means first (trial 1 a: (1 + 2) / 2 = 1.5), then over trials: a (1.5 + 3) / 2 = 2.25
    assert table.loc["a", "mean_rank"] == pytest.approx(2.25)
    assert table.loc["b", "mean_rank"] == pytest.approx((1.75 + 2) / 2)
    assert table.loc["c", "mean_rank"] == pytest.approx((2.75 + 1) / 2)
    assert table.loc["a", "mean_stars"] == pytest.approx((3.5 + 1) / 2)
    assert table.loc["a", "trials"] == 2 and table.loc["a", "raters"] == 2
    lo, hi = table.loc["a", "rank_ci95_lo"], table.loc["a", "rank_ci95_hi"]
    assert 1.5 <= lo <= 2.25 <= hi <= 3.0


def test_agreement_table_counts_and_values() -> None:
    rows = [(r, t, m, s) for r in (1, 2, 3) for t in (1, 2) for m, s in (("a", 5), ("b", 3), ("c", 1))]
    agreement = agreement_table(_ratings(rows)).set_index("criterion")
    assert agreement.loc["id_sim", "kendalls_w"] == pytest.approx(1.0)
    assert agreement.loc["id_sim", "w_trials"] == 2
    assert agreement.loc["id_sim", "krippendorff_alpha_ordinal"] == pytest.approx(1.0)
    assert agreement.loc["id_sim", "raters"] == 3 and agreement.loc["id_sim", "answers"] == 18
    assert agreement.loc["aesthetics", "answers"] == 0


def test_human_rows_average_over_raters() -> None:
    rows = human_rows(_ratings([(1, 1, "a", 5), (2, 1, "a", 2), (1, 1, "b", 4)], "copy_paste"), "copy_paste")
    assert {(r["case_id"], r["model"]): r["value"] for r in rows} == {("c1", "a"): 3.5, ("c1", "b"): 4.0}


def test_parse_per_subset() -> None:
    assert parse_per_subset(None) == {"p1": 100, "p2": 100, "p3": None}
    assert parse_per_subset("p1=3, p3=all") == {"p1": 3, "p3": None}
    for bad in ("p4=all", "p1=0", "p1", "p1=x", ""):
        with pytest.raises(ConfigError):
            parse_per_subset(bad)
