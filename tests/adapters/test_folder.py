"""The folder adapter: official layout, flat <case id>.png, an mbench generate folder, and failures."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from multiid_bench.adapters import get_adapter
from multiid_bench.errors import ConfigError


def _img(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path)


def test_official_layout_with_meta_and_basename(tmp_path, make_case):
    case = make_case(2)
    _img(tmp_path / "out" / case.id / "out.jpg", (200, 0, 0))
    (tmp_path / "out" / case.id / "meta.json").write_text(json.dumps({"prompt": "from meta", "seed": 1234}))
    res = get_adapter("folder", root=str(tmp_path / "out")).generate(case, 9)
    assert res.status == "ok" and res.record.extra["layout"] == "official" and res.record.prompt == "from meta"
    assert res.record.extra["meta"]["seed"] == 1234 and res.record.seed_applied is False

    from dataclasses import replace

    renamed = replace(case, meta={"official_basename": "num_3_0007"})
    _img(tmp_path / "off" / "num_3_0007" / "out.jpg", (0, 0, 200))
    res = get_adapter("folder", root=str(tmp_path / "off")).generate(renamed, 9)
    assert res.status == "ok" and res.record.extra["path"].endswith("num_3_0007/out.jpg")


def test_flat_and_mbench_layouts(tmp_path, make_case):
    case = make_case(1, case_id="p1_flat")
    _img(tmp_path / "flat" / "p1_flat.jpg", (1, 2, 3))
    res = get_adapter("folder", root=str(tmp_path / "flat")).generate(case, 0)
    assert res.status == "ok" and res.record.extra["layout"] == "flat" and res.image.size == (40, 30)

    gen = tmp_path / "gen"
    _img(gen / "images" / "p1_flat.png", (9, 9, 9))
    (gen / "generations.jsonl").write_text(json.dumps({"case_id": "p1_flat", "prompt": "sent", "seed": 5}) + "\n{torn")
    res = get_adapter("folder", root=str(gen)).generate(case, 0)
    assert res.record.extra["layout"] == "mbench" and res.record.prompt == "sent"
    assert res.record.extra["source_record"]["seed"] == 5


def test_missing_corrupt_and_ambiguous(tmp_path, make_case):
    case = make_case(1, case_id="p1_m")
    res = get_adapter("folder", root=str(tmp_path)).generate(case, 0)
    assert res.status == "failed" and "no image for case 'p1_m'" in res.reason and "p1_m.png" in res.reason
    (tmp_path / "p1_m.png").write_bytes(b"")
    res = get_adapter("folder", root=str(tmp_path)).generate(case, 0)
    assert res.status == "failed" and "p1_m.png" in res.reason
    _img(tmp_path / "p1_m" / "out.jpg", (0, 0, 0))
    with pytest.raises(ConfigError, match="more than one layout"):
        get_adapter("folder", root=str(tmp_path)).generate(case, 0)
    res = get_adapter("folder", root=str(tmp_path), layout="official").generate(case, 0)
    assert res.status == "ok"
    with pytest.raises(ConfigError, match="needs root"):
        get_adapter("folder")
    with pytest.raises(ConfigError, match="does not exist"):
        get_adapter("folder", root=str(tmp_path / "nope")).load("cpu")
