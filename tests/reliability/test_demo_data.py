"""Item 3 (demo data): the built demo bench is checked against its checksums on every load and rebuilt."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

from multiid_bench.data.demo import DEMO_CHECKSUMS, build_demo_bench


def test_a_changed_or_deleted_demo_file_is_rebuilt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bench = build_demo_bench(tmp_path)
    gt = Path(bench.cases[0].gt)
    ref = Path(bench.cases[1].refs[0])
    good_gt, good_ref = gt.read_bytes(), ref.read_bytes()
    gt.write_bytes(good_ref)  # another valid image: only the checksum tells
    with caplog.at_level(logging.WARNING):
        again = build_demo_bench(tmp_path)
    assert "failed its check" in caplog.text and Path(again.cases[0].gt).read_bytes() == good_gt
    ref.unlink()
    (Path(again.root) / DEMO_CHECKSUMS).unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        third = build_demo_bench(tmp_path)
    assert "failed its check" in caplog.text and Path(third.cases[1].refs[0]).read_bytes() == good_ref
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_demo_bench(tmp_path)
    assert "failed its check" not in caplog.text
