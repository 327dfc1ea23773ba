"""The dummy adapter: deterministic, seed-dependent composites of the references in their GT boxes."""
from __future__ import annotations

import numpy as np

from multiid_bench.adapters import get_adapter
from tests.adapters.conftest import BOXES, COLOURS, colour_of


def test_same_seed_same_pixels_other_seed_differs(make_case):
    case = make_case(2)
    a = get_adapter("dummy").generate(case, 11)
    b = get_adapter("dummy").generate(case, 11)
    c = get_adapter("dummy").generate(case, 12)
    assert a.status == "ok" and np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))


def test_references_land_in_their_scaled_boxes(make_case):
    case = make_case(3)
    res = get_adapter("dummy", jitter=0.0).generate(case, 3)
    assert res.image.size == (512, 384)  # long side 512, the GT's 4:3 aspect
    s = 512 / 800
    for k, (x1, y1, x2, y2) in enumerate(BOXES[:3]):
        centre = (round((x1 + x2) / 2 * s), round((y1 + y2) / 2 * s))
        assert res.image.getpixel(centre) == COLOURS[k]
    assert res.record.gt_derived_inputs == ("boxes", "gt_size") and res.record.reference_order == (0, 1, 2)


def test_no_gt_row_layout_and_fixed_size(make_case):
    res = get_adapter("dummy", jitter=0.0, width=300, height=200).generate(make_case(2, gt=False, boxes=False,
                                                                                     case_id="p2_free"), 1)
    assert res.image.size == (300, 200) and res.record.gt_derived_inputs == ()
    assert res.image.getpixel((75, 100)) == COLOURS[0] and res.image.getpixel((225, 100)) == COLOURS[1]
    assert colour_of(res.image) != COLOURS[0]
