"""Wide tables at 80 columns (mbench models, weights list, doctor): no line wider than the console, no word cut."""
from __future__ import annotations

import io

from rich.console import Console

from multiid_bench.cli._common import print_table


def test_a_column_too_wide_for_80_columns_becomes_a_list_not_broken_words() -> None:
    buf = io.StringIO()
    console = Console(width=80, file=buf, force_terminal=False)
    rows = [["dlib-face-recognition-v1-with-a-long-id", "dlib_face_recognition_resnet_model_v1.dat", "package"],
            ["adaface-ir101-webface12m", "adaface_ir101_webface12m.ckpt", "missing"]]
    print_table("weights", ["id", "file", "location"], rows, console=console)
    out = buf.getvalue()
    assert all(len(line) <= 80 for line in out.splitlines()), out
    for row in rows:
        for cell in row:
            assert cell in out, f"{cell!r} was broken across lines:\n{out}"
    assert "  file: dlib_face_recognition_resnet_model_v1.dat" in out  # the list form of the too-wide column
    assert "┃ location" in out  # the columns that fit stay a table
