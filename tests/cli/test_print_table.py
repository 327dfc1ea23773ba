"""The CLI's table printer fits 80 columns (and pipes) without breaking a word or a number."""
from __future__ import annotations

import io

from rich.console import Console

from multiid_bench.cli._common import print_table

HEADER = ["subset", "face model", "n", "Sim(GT) ↑", "Sim(Ref) ↑", "CP all cases ↓", "CP Sim(GT)-filtered (paper) ↓",
          "Blend(GT) ↓", "Blend(Ref) ↓"]
ROWS = [["p1", "average", "11", "0.9874 [0.973, 0.989]", "0.9998", "0.9086", "0.9086", "0.0000", "-0.1234"],
        ["all", "arcface-glintr100", "433", "0.4641", "0.5234", "-0.0123", "0.3456", "0.1111", "0.2222"]]


def _render(width: int, key_columns: int = 3) -> str:
    buf = io.StringIO()
    print_table("copy-reference on demo", HEADER, ROWS, key_columns=key_columns, console=Console(file=buf, width=width))
    return buf.getvalue()


def test_fits_the_width_and_keeps_every_word_and_number_whole() -> None:
    for width in (60, 80, 100):
        out = _render(width)
        assert max(len(line) for line in out.splitlines()) <= width
        cells = {c.strip() for line in out.splitlines() for c in line.replace("┃", "│").split("│")}
        for value in [v for row in ROWS for v in row]:
            assert value in cells, (width, value)  # a number or name never wraps
        words = set(out.split())
        assert {"Sim(GT)-filtered", "arcface-glintr100", "Blend(Ref)"} <= words


def test_narrow_consoles_split_columns_and_repeat_the_row_names() -> None:
    out = _render(80)
    assert [f"copy-reference on demo ({i}/3)" in out for i in (1, 2, 3)] == [True] * 3
    assert out.count("arcface-glintr100") == 3 and out.count("433") == 3  # key columns in every part
    assert "(1/" not in _render(200)  # wide enough: one table
