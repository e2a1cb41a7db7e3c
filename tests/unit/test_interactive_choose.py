"""interactive/choose.py: the entry under the annotator's points / in their box, never just the first."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from gemini_ls.detections import Detection, NormBox, PolygonMask
from gemini_ls.interactive.choose import Point, Why, choose, holds, percent_box, percent_point


def _det(y0, x0, y1, x1, kind="box") -> Detection:
    box = NormBox(y0, x0, y1, x1)
    if kind == "mask":  # a disc filling the box
        yy, xx = np.mgrid[0:64, 0:64]
        disc = ((yy - 31.5) ** 2 + (xx - 31.5) ** 2 <= 32**2).astype(np.uint8) * 255
        return Detection("Red", "Red", box=box, mask=disc)
    if kind == "polygon":  # a diamond inside the box
        cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
        ring = ((cx, y0), (x1, cy), (cx, y1), (x0, cy))
        return Detection("Red", "Red", box=box, polygon=PolygonMask((ring,)))
    return Detection("Red", "Red", box=box)


BIG = (100, 100, 500, 500)
SMALL = (600, 600, 700, 700)


def test_click_on_the_second_entry_picks_it():
    for kind in ("box", "mask", "polygon"):
        cands = [_det(*BIG, kind=kind), _det(*SMALL, kind=kind)]
        choice = choose(cands, [Point(650, 650)])
        assert (choice.index, choice.why) == (1, Why.POINTS), kind
        assert choose(cands, [Point(300, 300)]).index == 0


def test_most_positive_points_and_no_negative():
    cands = [_det(*BIG), _det(*SMALL), _det(550, 550, 750, 750)]
    # two points in the third box, one of them also in SMALL: the third holds both
    assert choose(cands, [Point(560, 560), Point(650, 650)]).index == 2
    # a negative click on SMALL's pixels (also in the third box) rules both out
    assert choose(cands, [Point(650, 650), Point(655, 655, positive=False)]).why is Why.NONE


def test_mask_miss_falls_back_to_the_box():
    corner = Point(105, 105)  # inside BIG's box, outside its disc mask
    cands = [_det(*SMALL, kind="mask"), _det(*BIG, kind="mask")]
    assert not holds(cands[1], corner)
    choice = choose(cands, [corner])
    assert (choice.index, choice.why) == (1, Why.BOX_FALLBACK)


def test_background_click_is_a_clear_none():
    choice = choose([_det(*BIG), _det(*SMALL)], [Point(900, 50)])
    assert choice.index is None and choice.why is Why.NONE and "no object" in (choice.message or "")
    assert choose([], [Point(1, 1)]).why is Why.NONE


def test_box_prompt_picks_the_best_overlap():
    cands = [_det(*BIG), _det(*SMALL)]
    assert choose(cands, [], NormBox(590, 590, 710, 710)).index == 1
    assert choose(cands, [], NormBox(90, 90, 510, 510)).why is Why.BOX
    assert choose(cands, [], NormBox(800, 10, 900, 90)).why is Why.NONE


def test_percent_conversion():
    assert percent_point(25, 50) == Point(500, 250)
    assert percent_box(10, 20, 30, 40) == NormBox(200, 100, 600, 400)


coord = st.floats(0, 1000, allow_nan=False)


@st.composite
def _scene(draw):
    """Disjoint boxes in a shuffled order, a click inside one of them."""
    n = draw(st.integers(1, 5))
    boxes = [(100 * i + 10, 200 * (i % 4) + 10, 100 * i + 90, 200 * (i % 4) + 190) for i in range(n)]
    order = draw(st.permutations(range(n)))
    kind = draw(st.sampled_from(["box", "polygon"]))
    target = draw(st.integers(0, n - 1))
    y0, x0, y1, x1 = boxes[order[target]]
    fy, fx = draw(st.floats(0.4, 0.6)), draw(st.floats(0.4, 0.6))  # near the centre: inside the diamond too
    return [_det(*boxes[i], kind=kind) for i in order], target, Point(y0 + fy * (y1 - y0), x0 + fx * (x1 - x0))


@given(_scene())
def test_property_the_clicked_entry_wins_whatever_the_order(scene):
    cands, target, click = scene
    assert choose(cands, [click]).index == target
    # a negative click on it too: never that entry
    assert choose(cands, [click, Point(click.y, click.x, positive=False)]).index != target


@given(_scene())
def test_property_drawn_box_around_an_entry_picks_it(scene):
    cands, target, _ = scene
    b = cands[target].box
    assert b is not None
    assert choose(cands, [], NormBox(b.ymin - 5, b.xmin - 5, b.ymax + 5, b.xmax + 5)).index == target


@given(st.lists(st.tuples(coord, coord, coord, coord), max_size=6), coord, coord)
def test_property_a_chosen_entry_holds_the_click(raw, y, x):
    cands = [_det(min(a, c), min(b, d), max(a, c) + 1, max(b, d) + 1) for a, b, c, d in raw]
    choice = choose(cands, [Point(y, x)])
    if choice.index is None:
        assert not any(holds(d, Point(y, x)) for d in cands)
    else:
        assert holds(cands[choice.index], Point(y, x))
