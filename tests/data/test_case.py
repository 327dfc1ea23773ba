"""The Case and Bench records: validation names the case and field; the manifest hash is content-only."""
from __future__ import annotations

from pathlib import Path

import pytest

from multiid_bench.data.case import Bench, Case, subset_for_persons
from multiid_bench.errors import BadInputError


def _case(**kw) -> Case:
    base = dict(id="c1", subset="p2", prompt="two people", gt=Path("gt.jpg"), refs=(Path("a.jpg"), Path("b.jpg")),
                boxes=((0, 0, 10, 10), (20, 0, 30, 10)), num_persons=2)
    base.update(kw)
    return Case(**base)


def test_round_trip() -> None:
    c = _case(meta={"row": 3})
    assert Case.from_dict(c.to_dict()) == c
    assert c.boxes[1] == (20.0, 0.0, 30.0, 10.0)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"subset": "p9"}, "field 'subset'"),
        ({"refs": ()}, "field 'refs' is empty"),
        ({"boxes": ((0, 0, 10, 10),)}, "2 references but 1 boxes"),
        ({"boxes": ((0, 0, 10, 10), (5, 5, 1, 1))}, r"boxes\[1\]"),
        ({"id": "../x"}, "path separators"),
        ({"num_persons": 7}, "num_persons"),
    ],
)
def test_validation_names_case_and_field(kw: dict, match: str) -> None:
    with pytest.raises(BadInputError, match=match):
        _case(**kw)


def test_subset_for_persons() -> None:
    assert [subset_for_persons(n) for n in (1, 2, 3, 4)] == ["p1", "p2", "p3", "p3"]
    with pytest.raises(BadInputError):
        subset_for_persons(5)


def test_bench_hash_depends_on_content_not_location(tmp_path: Path) -> None:
    a = Bench("b", tmp_path, (_case(gt=tmp_path / "gt.jpg"),))
    b = Bench("b", tmp_path, (_case(gt=tmp_path / "gt.jpg", meta={"x": 1}),))
    c = Bench("b", tmp_path, (_case(gt=tmp_path / "gt.jpg", prompt="other"),))
    assert a.manifest_sha256 == b.manifest_sha256 != c.manifest_sha256
    with pytest.raises(BadInputError, match="duplicate case ids"):
        Bench("b", tmp_path, (_case(), _case()))
    assert len(a.select(subsets=["p1"])) == 0 and len(a.select(limit=1)) == 1
