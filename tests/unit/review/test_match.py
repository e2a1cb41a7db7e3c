"""match_regions: outcomes per region type, property-tested on random rectangle sets."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gemini_ls.regions.rle import encode_full_mask
from gemini_ls.review.match import Outcome, match_regions, polygon_iou
from gemini_ls.review.stats import tally


def rect(x, y, w, h, label="Cat", rid=None, score=None, control="rect"):
    r = {"from_name": control, "to_name": "image", "type": "rectanglelabels", "original_width": 400, "original_height": 300,
         "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}}
    if rid:
        r["id"] = rid
    if score is not None:
        r["score"] = score
    return r


def outcomes_of(pred, ann):
    return [o.outcome for o in match_regions(pred, ann)]


def test_rectangles_every_outcome():
    pred = [rect(10, 10, 20, 20, "Cat", "a"), rect(50, 50, 20, 20, "Dog", "b"), rect(80, 5, 10, 10, "Cat", "c"),
            rect(5, 60, 20, 20, "Purple", "d")]
    ann = [
        rect(10, 10, 20, 20, "Cat", "a"),  # accepted
        rect(52, 50, 20, 20, "Dog", "b"),  # moved 10 % of its width: adjusted
        rect(5, 60, 20, 20, "Magenta", "d"),  # relabelled
        rect(30, 70, 10, 10, "Cat", "new"),  # drawn by hand: missed
    ]  # "c" removed: deleted
    got = {(o.predicted_id, o.annotation_id): (o.outcome, o.new_label) for o in match_regions(pred, ann)}
    assert got == {
        ("a", "a"): (Outcome.ACCEPTED, None),
        ("b", "b"): (Outcome.ADJUSTED, None),
        ("d", "d"): (Outcome.RELABELLED, "Magenta"),
        ("c", None): (Outcome.DELETED, None),
        (None, "new"): (Outcome.MISSED, None),
    }
    t = tally(match_regions(pred, ann))
    assert t.labels["Magenta"].relabelled_in == 1 and t.labels["Purple"].relabelled == 1
    assert abs(t.labels["Dog"].mean_iou - 18 * 20 / (22 * 20)) < 1e-6


def test_without_ids_optimal_assignment_not_greedy():
    # Greedy by IoU would pair p0 with a1 (the best IoU overall) and leave p1 and a0 unmatched.
    pred = [rect(0, 0, 10, 10), rect(6, 0, 10, 10)]
    ann = [rect(-3, 0, 10, 10), rect(3, 0, 10, 10)]
    res = match_regions(pred, ann)
    assert [o.outcome for o in res] == [Outcome.ADJUSTED, Outcome.ADJUSTED]


def test_ids_pair_even_when_moved_far():
    res = match_regions([rect(0, 0, 10, 10, rid="x")], [rect(60, 60, 10, 10, rid="x")])
    assert [o.outcome for o in res] == [Outcome.ADJUSTED]
    assert res[0].similarity == 0.0


def test_other_control_never_matches():
    res = match_regions([rect(0, 0, 10, 10)], [rect(0, 0, 10, 10, control="other")])
    assert sorted(o.outcome.value for o in res) == ["deleted", "missed"]


def test_choices_exact_and_text_similarity():
    def choice(v, rid="c"):
        return {"id": rid, "from_name": "colour", "to_name": "image", "type": "choices", "value": {"choices": v}}

    def text(t, rid="t"):
        return {"id": rid, "from_name": "caption", "to_name": "image", "type": "textarea", "value": {"text": [t]}}

    assert outcomes_of([choice(["Red"])], [choice(["Red"])]) == [Outcome.ACCEPTED]
    assert outcomes_of([choice(["Red"])], [choice(["Blue"], "z")]) == [Outcome.RELABELLED]
    assert outcomes_of([text("A red square.")], [text("a red  square")]) == [Outcome.ACCEPTED]
    assert outcomes_of([text("A red square on white")], [text("A red square on grey", "q")]) == [Outcome.ADJUSTED]
    assert sorted(o.value for o in outcomes_of([text("A red square")], [text("Nothing at all here", "q")])) == ["deleted", "missed"]


def test_keypoints_by_distance_relative_to_diagonal():
    def kp(x, y, rid=None):
        r = {"from_name": "kp", "to_name": "image", "type": "keypointlabels", "original_width": 400, "original_height": 300,
             "value": {"x": x, "y": y, "width": 1, "keypointlabels": ["Eye"]}}
        if rid:
            r["id"] = rid
        return r

    assert outcomes_of([kp(50, 50)], [kp(50, 50)]) == [Outcome.ACCEPTED]
    assert outcomes_of([kp(50, 50)], [kp(52, 50)]) == [Outcome.ADJUSTED]  # 8 px of a 500 px diagonal
    assert sorted(o.value for o in outcomes_of([kp(50, 50)], [kp(60, 50)])) == ["deleted", "missed"]  # 40 px > 25 px


def test_brush_by_mask_iou():
    def brush(mask, rid=None):
        r = {"from_name": "b", "to_name": "image", "type": "brushlabels", "original_width": mask.shape[1],
             "original_height": mask.shape[0], "value": {"format": "rle", "rle": encode_full_mask(mask), "brushlabels": ["Cat"]}}
        if rid:
            r["id"] = rid
        return r

    m = np.zeros((60, 80), bool)
    m[10:30, 10:30] = True
    moved = np.roll(m, 3, axis=1)
    elsewhere = np.roll(m, 40, axis=1)
    assert outcomes_of([brush(m)], [brush(m)]) == [Outcome.ACCEPTED]
    res = match_regions([brush(m)], [brush(moved)])
    assert res[0].outcome is Outcome.ADJUSTED and abs(res[0].similarity - 17 * 20 / (23 * 20)) < 1e-6
    assert sorted(o.value for o in outcomes_of([brush(m)], [brush(elsewhere)])) == ["deleted", "missed"]


def test_polygons_by_polygon_iou():
    square = [[10, 10], [30, 10], [30, 30], [10, 30]]
    half = [[10, 10], [20, 10], [20, 30], [10, 30]]
    assert abs(polygon_iou(square, half, 512, 512) - 0.5) < 0.03
    poly = {"from_name": "p", "to_name": "image", "type": "polygonlabels", "original_width": 512, "original_height": 512,
            "value": {"points": square, "polygonlabels": ["Cat"]}}
    assert outcomes_of([poly], [poly]) == [Outcome.ACCEPTED]


def test_garbage_is_ignored_not_fatal():
    assert match_regions([{"type": "relation"}, "x", {"value": None}], None) == ()
    bad_brush = {"from_name": "b", "to_name": "image", "type": "brushlabels", "original_width": 10, "original_height": 10,
                 "value": {"rle": [1, 2, 3], "brushlabels": ["Cat"]}}
    assert sorted(o.value for o in outcomes_of([bad_brush], [bad_brush])) == ["deleted", "missed"]


boxes = st.lists(
    st.tuples(st.floats(0, 80), st.floats(0, 80), st.floats(2, 20), st.floats(2, 20), st.sampled_from(["A", "B", "C"])),
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(boxes, boxes)
def test_properties(pred_spec, ann_spec):
    pred = [rect(x, y, w, h, lab, f"p{i}") for i, (x, y, w, h, lab) in enumerate(pred_spec)]
    ann = [rect(x, y, w, h, lab) for (x, y, w, h, lab) in ann_spec]
    res = match_regions(pred, ann)
    per_pred = [o for o in res if o.outcome is not Outcome.MISSED]
    missed = [o for o in res if o.outcome is Outcome.MISSED]
    # every predicted region gets exactly one outcome; matched annotation regions + missed = all
    assert sorted(o.predicted_id for o in per_pred) == sorted(r["id"] for r in pred)
    matched = [o for o in per_pred if o.outcome is not Outcome.DELETED]
    assert len(matched) + len(missed) == len(ann)
    assert all(o.similarity is not None and o.similarity >= 0.5 for o in matched)
    # a result compared with itself is accepted entirely; against nothing it is deleted entirely
    assert all(o.outcome is Outcome.ACCEPTED for o in match_regions(pred, pred))
    assert all(o.outcome is Outcome.DELETED for o in match_regions(pred, []))
    assert all(o.outcome is Outcome.MISSED for o in match_regions([], ann))
    # without ids, the assignment does not depend on the order of the annotation's regions
    assert sorted(o.outcome.value for o in match_regions(pred, ann[::-1])) == sorted(o.outcome.value for o in res)
    # the tally conserves counts
    t = tally(res)
    assert t.total().predicted == len(pred) and t.total().missed == len(missed)


@settings(max_examples=60, deadline=None)
@given(boxes)
def test_shifted_by_ten_percent_is_adjusted(spec):
    pred = [rect(x, y, w, h, lab, f"p{i}") for i, (x, y, w, h, lab) in enumerate(spec)]
    shifted = [{**r, "value": {**r["value"], "x": r["value"]["x"] + 0.1 * r["value"]["width"]}} for r in pred]
    assert all(o.outcome is Outcome.ADJUSTED for o in match_regions(pred, shifted))
