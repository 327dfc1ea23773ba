"""The adapter contract: seeds, box scaling, capabilities, records and results."""
from __future__ import annotations

import hashlib
import json

import pytest

from multiid_bench.adapters._common import people_prompt, square_crop_boxes
from multiid_bench.adapters.base import (
    Capabilities,
    GenerationRecord,
    GenerationResult,
    derive_seed,
    scale_boxes,
)
from multiid_bench.errors import ConfigError


def test_derive_seed_is_the_documented_hash():
    expected = int.from_bytes(hashlib.sha256(b"42:p2_0007:0").digest()[:8], "big") % 2**31
    assert derive_seed(42, "p2_0007") == expected
    seeds = {derive_seed(0, f"case{i}") for i in range(500)}
    assert len(seeds) == 500 and all(0 <= s < 2**31 for s in seeds)
    assert derive_seed(0, "a") != derive_seed(1, "a") and derive_seed(0, "a", 1) != derive_seed(0, "a", 0)


def test_scale_boxes_per_axis_and_clipped():
    assert scale_boxes([(100, 50, 300, 150)], (400, 200), (800, 100)) == ((200.0, 25.0, 600.0, 75.0),)
    assert scale_boxes([(-10, 0, 500, 100)], (400, 200), (400, 200)) == ((0.0, 0.0, 400.0, 100.0),)
    with pytest.raises(ConfigError):
        scale_boxes([(0, 0, 1, 1)], (0, 10), (10, 10))


def test_square_crop_keeps_faces_and_falls_back_to_stretch():
    crop, inside = square_crop_boxes([(10, 10, 50, 50), (700, 20, 790, 90)], (800, 400))
    assert crop == (0.0, 0.0, 800.0, 400.0)  # union 780 px wide > 400 px square: whole image
    crop, inside = square_crop_boxes([(10, 300, 60, 380)], (400, 800))
    assert crop == (0.0, 140.0, 400.0, 540.0) and inside == ((10.0, 160.0, 60.0, 240.0),)


def test_people_prompt():
    assert people_prompt("A.", 1, "One <1>.", "P{k}.") == "A. One <1>."
    assert people_prompt("A. ", 3, "x", "P{k}/{n}.") == "A. P1/3. P2/3. P3/3."


def test_capabilities_validation_and_serialisation():
    caps = Capabilities(max_ids=2, native_res=(512, 768), licence="MIT", gt_derived_inputs=("boxes",),
                        defaults={"steps": 3, "size": (1, 2)})
    d = caps.to_dict()
    assert d["native_res"] == [512, 768] and d["defaults"] == {"steps": 3, "size": [1, 2]}
    json.dumps(d)
    with pytest.raises(TypeError):
        caps.defaults["steps"] = 4  # read-only mapping
    for bad in ({"max_ids": 0}, {"support_status": "maybe"}, {"integration": "magic"},
                {"gt_derived_inputs": ("mind",)}, {"prompt_template": "no placeholder"}):
        with pytest.raises(ConfigError):
            Capabilities(**{"max_ids": 1, "native_res": (1, 1), "licence": "x", **bad})


def test_record_roundtrip_and_result_rules():
    rec = GenerationRecord(adapter="a", adapter_version="1", case_id="c", seed=5, settings={"p": (1, 2)},
                           prompt="hi", reference_order=(1, 0), gt_derived_inputs=("boxes",), elapsed_s=0.123456,
                           requested_size=(512, 512), output_size=(512, 512), extra={"k": "v"})
    d = rec.to_dict()
    assert d["settings"] == {"p": [1, 2]} and d["elapsed_s"] == 0.1235
    back = GenerationRecord.from_dict(json.loads(json.dumps(d)))
    assert back.reference_order == (1, 0) and back.requested_size == (512, 512) and back.seed == 5
    with pytest.raises(ConfigError, match="needs an image"):
        GenerationResult(None, rec, "ok")
    with pytest.raises(ConfigError, match="needs a reason"):
        GenerationResult(None, rec, "failed")
    with pytest.raises(ConfigError, match="status"):
        GenerationResult(None, rec, "weird", "x")  # type: ignore[arg-type]
    row = GenerationResult(None, rec, "not_applicable", "single-ID method").to_row()
    assert row["status"] == "not_applicable" and row["reason"] == "single-ID method" and row["image"] is None
