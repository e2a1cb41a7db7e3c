from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gemini_ls.detections import NormBox
from gemini_ls.regions.result import box_percent

coord = st.floats(0, 1000, allow_nan=False)


@st.composite
def norm_boxes(draw):
    y = sorted([draw(coord), draw(coord)])
    x = sorted([draw(coord), draw(coord)])
    return NormBox(ymin=y[0], xmin=x[0], ymax=y[1], xmax=x[1])


@given(norm_boxes())
def test_percent_is_the_norm_box_over_ten_and_inside_the_image(box):
    x, y, w, h = box_percent(box)
    assert abs(x - box.xmin / 10) < 1e-3 and abs(y - box.ymin / 10) < 1e-3
    assert abs(w - (box.xmax - box.xmin) / 10) < 1e-3 and abs(h - (box.ymax - box.ymin) / 10) < 1e-3
    assert 0 <= x <= 100 and 0 <= y <= 100 and w >= 0 and h >= 0
    assert x + w <= 100 + 1e-9 and y + h <= 100 + 1e-9


@given(norm_boxes(), st.integers(1, 6000), st.integers(1, 6000))
def test_pixels_round_trip_within_a_pixel(box, width, height):
    p = box.to_pixels(width, height)
    assert 0 <= p.x0 < p.x1 <= width and 0 <= p.y0 < p.y1 <= height
    x, y, w, h = box_percent(box)
    # back from pixels to percent: rounding (half a pixel) plus the 1-pixel minimum size / clamp
    px, py = 150 / width + 1e-6, 150 / height + 1e-6
    assert abs(p.x0 / width * 100 - x) <= px
    assert abs(p.y0 / height * 100 - y) <= py
    assert abs(p.x1 / width * 100 - (x + w)) <= px
    assert abs(p.y1 / height * 100 - (y + h)) <= py
