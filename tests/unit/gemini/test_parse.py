"""The robust answer parser (gemini/parse.py, lenient_json.py, item_fields.py, mask_decode.py) against every answer-text quirk in the reference.

Known issues of Gemini's answers (docs/gemini-facts.md#spatial-output, with the public issues
they come from), and which module covers each:

| #  | issue                                              | covered by                    | test here / elsewhere                                  |
|----|----------------------------------------------------|-------------------------------|--------------------------------------------------------|
| 1  | cookbook#345 many objects -> wrong boxes           | prompts.py ("Limit to N")     | not a parsing matter                                   |
| 2  | cookbook#907 AI Studio vs API, media_resolution    | client.generation_config      | test_client.py::test_media_resolution                   |
| 3  | cookbook#798 <start_of_mask> tokens, Unterminated  | mask_decode / lenient_json    | test_issue3_*                                          |
| 4  | cookbook#961 boolean mask list                     | mask_decode.decode_mask       | test_issue4_boolean_mask_keeps_box                     |
| 5  | prpl-mono#472 <seg_N> tokens -> 0 detections       | mask_decode.decode_mask       | test_issue5_seg_tokens_keep_boxes                      |
| 6  | xrblocks#474 thinking_budget 0 rejected on 3.x     | client.thinking_config        | test_client.py::test_thinking_per_family               |
| 7  | no segmentation on 3 Pro; thinking adds latency    | client.thinking_config        | test_client.py (model choice itself: deployment docs)  |
| 8  | python-genai#1039 parsed None on MAX_TOKENS        | parse (we parse .text)        | test_issue8_max_tokens_partial_json                    |
| 9  | python-genai#811 thinking eats tokens, text None   | parse + wire.reply_from       | test_issue9_text_none_max_tokens, test_request.py      |
| 10 | FAILED_PRECONDITION file not ACTIVE                | errors.from_api_error         | test_errors.py::test_file_rejections                   |
| 11 | 403 PERMISSION_DENIED on a file                    | errors.from_api_error         | test_errors.py::test_file_rejections                   |
| 12 | SDK ignores RetryInfo.retryDelay                   | request.retry_delay_from/gate | test_request.py, integration test_gemini_request.py    |
| 13 | retry options ignored for aio streams              | not applicable: no streaming  | -                                                      |
| 14 | v1 rejects SDK payloads                            | client.make_client (v1beta)   | test_client.py::test_make_client_pins_v1beta           |
| 15 | docs parse_json returns the still-fenced string    | lenient_json.strip_fences     | test_issue15_*                                         |
| 16 | supervision: all-or-nothing masks/confidence,      | parse (per item)              | test_issue16_*                                         |
|    |   misaligned confidence, no clamping;              |                               |                                                        |
|    |   `>0` vs 127 threshold                            | regions (mask converter)      | the region converter's tests                           |
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gemini_ls.detections import NormBox, NormPoint
from gemini_ls.gemini.item_fields import parse_box
from gemini_ls.gemini.labels import LabelMatcher
from gemini_ls.gemini.lenient_json import load_answer, strip_fences
from gemini_ls.gemini.mask_decode import decode_mask
from gemini_ls.gemini.parse import parse_choices, parse_detections, parse_text
from gemini_ls.labelconfig import LabelSpec

LABELS = (LabelSpec("cat"), LabelSpec("dog", hint="a brown puppy"), LabelSpec("red square"))
M = LabelMatcher(LABELS)
ITEMS = [
    {"box_2d": [100, 200, 300, 400], "label": "cat"},
    {"box_2d": [500, 500, 900, 800], "label": "dog"},
]
JSON = json.dumps(ITEMS)


def png_b64(array: np.ndarray, mode: str | None = None, urlsafe: bool = False) -> str:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(buf.getvalue()).decode()


GRADIENT = np.tile(np.arange(0, 256, dtype=np.uint8), (16, 1))  # 16 x 256, 0..255
DATA_URL = "data:image/png;base64," + png_b64(GRADIENT)


def boxes(answer):
    return [(d.label, d.box) for d in answer.detections]


def detect(text, **kw):
    return parse_detections(text, matcher=M, **kw)


# --------------------------------------------------------------------------- fences and prose


@pytest.mark.parametrize(
    "text",
    [
        f"```json\n{JSON}\n```",
        f"```JSON\n{JSON}\n```",
        f"```\n{JSON}\n```",
        f"   ```json\n   {JSON}\n   ```",
        f"```json {JSON}```",
        f"Here are the boxes:\n```json\n{JSON}\n```\nLet me know!",
    ],
)
def test_fences(text):
    answer = detect(text)
    assert [d.label for d in answer.detections] == ["cat", "dog"]
    assert answer.dropped == {}


def test_issue15_docs_parse_json_bug_closing_fence_is_stripped():
    # The docs copy returned "...]\n```": json.loads failed. strip_fences must drop the closing fence.
    assert strip_fences(f"```json\n{JSON}\n```").strip() == JSON
    assert len(detect(f"```json\n{JSON}\n```").detections) == 2


def test_prose_around_json():
    text = f"Sure! I found [two] animals {{not json}}: {JSON} -- hope this helps [1]."
    assert [d.label for d in detect(text).detections] == ["cat", "dog"]


def test_trailing_comma_in_list_is_tolerated():
    text = JSON[:-1] + ",]"
    assert len(detect(text).detections) == 2


@pytest.mark.parametrize("key", ["items", "masks", "detections", "objects", "boxes", "points", "ITEMS"])
def test_dict_wrappers(key):
    answer = detect(json.dumps({key: ITEMS}))
    assert [d.label for d in answer.detections] == ["cat", "dog"]


def test_single_item_without_list():
    assert [d.label for d in detect(json.dumps(ITEMS[0])).detections] == ["cat"]


def test_no_json_is_counted_not_raised():
    answer = detect("I cannot see any animals in this picture.")
    assert answer.detections == ()
    assert answer.dropped == {"no_json": 1}


def test_none_and_empty_text():
    assert detect(None) == detect(None)  # frozen value
    assert detect(None).detections == () and detect(None).dropped == {}
    assert detect("   ").detections == ()


# --------------------------------------------------------------------------- truncation


def test_issue8_max_tokens_partial_json():
    # python-genai#1039: .parsed is None but .text holds the partial JSON: recover complete items.
    text = JSON[:-1] + ', {"box_2d": [10, 20, 3'
    answer = detect(text, finish_reason="MAX_TOKENS")
    assert [d.label for d in answer.detections] == ["cat", "dog"]
    assert answer.truncated is True
    assert answer.dropped == {"truncated_item": 1}


def test_truncation_detected_without_finish_reason():
    text = "```json\n" + JSON[:-1] + ',\n  {"box_2d": [10, 20'
    answer = detect(text)
    assert len(answer.detections) == 2 and answer.truncated


def test_truncated_right_after_an_item_loses_nothing():
    answer = detect(JSON[:-1] + ",\n")
    assert len(answer.detections) == 2
    assert answer.truncated and answer.dropped == {}


def test_truncated_inside_first_item():
    answer = detect('[{"box_2d": [10, 20, 30', finish_reason="MAX_TOKENS")
    assert answer.detections == () and answer.truncated
    assert answer.dropped == {"truncated_item": 1}


def test_truncated_wrapper():
    text = json.dumps({"detections": ITEMS})[:-2] + ', {"label": "ca'
    answer = detect(text)
    assert [d.label for d in answer.detections] == ["cat", "dog"] and answer.truncated


def test_issue3_unterminated_mask_item_is_dropped():
    # cookbook#798: forced base64 loops and the JSON ends inside the mask string.
    good = {"box_2d": [100, 100, 200, 200], "label": "cat", "mask": DATA_URL}
    text = json.dumps([good]) [:-1] + ', {"box_2d": [300, 300, 400, 400], "label": "dog", "mask": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA'
    answer = detect(text, want_masks=True, finish_reason="MAX_TOKENS")
    assert [d.label for d in answer.detections] == ["cat"]
    assert answer.detections[0].mask is not None
    assert answer.dropped == {"truncated_item": 1}


def test_brackets_inside_strings_do_not_confuse_recovery():
    items = [{"box_2d": [1, 2, 3, 4], "label": "cat", "note": "a ] tricky } label [with {brackets"}]
    answer = detect(json.dumps(items)[:-1] + ', {"box_2d": [1')
    assert [d.raw_label for d in answer.detections] == ["cat"]


def test_issue9_text_none_max_tokens():
    # python-genai#811: thinking used the whole budget; the SDK's text is None.
    answer = detect(None, finish_reason="MAX_TOKENS")
    assert answer.detections == () and answer.truncated is True


@pytest.mark.parametrize("finish", ["MAX_TOKENS", "FinishReason.MAX_TOKENS", "max_tokens"])
def test_finish_reason_spellings(finish):
    assert detect(JSON, finish_reason=finish).truncated is True
    assert detect(JSON, finish_reason="STOP").truncated is False


# --------------------------------------------------------------------------- boxes


def test_box_values():
    assert parse_box([100, 200, 300, 400]) == NormBox(100, 200, 300, 400)
    assert parse_box(["100", "200.5", 300, 400]) == NormBox(100, 200.5, 300, 400)  # numbers as strings
    assert parse_box([-50, 200, 1300, 400]) == NormBox(0, 200, 1000, 400)  # clamped
    assert parse_box([300, 400, 100, 200]) == NormBox(100, 200, 300, 400)  # inverted -> swapped
    assert parse_box("[100, 200, 300, 400]") == NormBox(100, 200, 300, 400)


@pytest.mark.parametrize(
    "box",
    [None, [1, 2, 3], [1, 2, 3, 4, 5], [1, "x", 3, 4], [1, True, 3, 4], [100, 200, 100, 400], [100, 200, 300, 200],
     [1, 2, float("nan"), 4], "box", {"ymin": 1}, [1500, 1500, 2000, 2000]],
)
def test_bad_boxes_dropped_and_counted(box):
    answer = detect(json.dumps([{"box_2d": box, "label": "cat"}, ITEMS[1]]).replace("NaN", "NaN"))
    assert [d.label for d in answer.detections] == ["dog"]
    assert answer.dropped == {"bad_box": 1}


def test_issue16_no_clamping_in_supervision_we_clamp():
    answer = detect(json.dumps([{"box_2d": [-10, -10, 1010, 1010], "label": "cat"}]))
    assert answer.detections[0].box == NormBox(0, 0, 1000, 1000)


# --------------------------------------------------------------------------- labels, items, scores


def test_unknown_labels_and_non_objects_counted():
    items = [ITEMS[0], {"box_2d": [1, 2, 3, 4], "label": "zebra"}, {"box_2d": [1, 2, 3, 4]}, "cat", 7, None, [1, 2]]
    answer = detect(json.dumps(items))
    assert [d.label for d in answer.detections] == ["cat"]
    assert answer.dropped == {"unknown_label": 2, "not_an_object": 4}


def test_labels_mapped_through_matcher():
    items = [{"box_2d": [1, 2, 3, 4], "label": "Cat 2"}, {"box_2d": [1, 2, 30, 40], "label": "a brown puppy"}]
    answer = detect(json.dumps(items))
    assert [(d.label, d.raw_label) for d in answer.detections] == [("cat", "Cat 2"), ("dog", "a brown puppy")]


def test_scores():
    items = [
        dict(ITEMS[0], confidence=0.7),
        dict(ITEMS[0], score="0.4"),
        dict(ITEMS[0], confidence=1.8),
        dict(ITEMS[0], confidence=-1),
        dict(ITEMS[0], confidence="high"),
        ITEMS[0],
    ]
    assert [d.score for d in detect(json.dumps(items)).detections] == [0.7, 0.4, 1.0, 0.0, None, None]


def test_image_index():
    items = [dict(ITEMS[0], image_index=1), dict(ITEMS[0], image_index="2"), dict(ITEMS[0], image_index=-1), ITEMS[0]]
    assert [d.image_index for d in detect(json.dumps(items)).detections] == [1, 2, 0, 0]


# --------------------------------------------------------------------------- points


def test_points():
    items = [{"point": [250, 750], "label": "cat"}, {"point": ["10", 1200], "label": "dog"}, {"point": [1], "label": "cat"}]
    answer = detect(json.dumps(items), want_points=True)
    assert [d.point for d in answer.detections] == [NormPoint(y=250, x=750), NormPoint(y=10, x=1000)]
    assert answer.dropped == {"bad_point": 1}


# --------------------------------------------------------------------------- masks


def test_mask_data_url_decoded():
    mask = decode_mask(DATA_URL)
    assert mask is not None and mask.dtype == np.uint8 and mask.shape == (16, 256)
    assert np.array_equal(mask, GRADIENT)


def test_mask_tolerates_whitespace_missing_padding_urlsafe_and_bare():
    b64 = png_b64(GRADIENT, urlsafe=True)
    wrapped = "data:image/png;base64,\n" + "\n  ".join(b64[i : i + 60] for i in range(0, len(b64), 60))
    for value in (wrapped, wrapped.rstrip("="), b64, " " + b64.rstrip("=") + "\n"):
        mask = decode_mask(value)
        assert mask is not None and np.array_equal(mask, GRADIENT), value[:40]


def test_mask_rgb_uses_luminance():
    rgb = np.stack([GRADIENT] * 3, axis=-1)
    assert np.array_equal(decode_mask(png_b64(rgb)), GRADIENT)


def test_mask_rgba_constant_colour_uses_alpha():
    # An overlay-style mask: one colour everywhere, the coverage in alpha. convert("L") would be flat.
    rgba = np.zeros((16, 256, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = GRADIENT
    assert np.array_equal(decode_mask(png_b64(rgba)), GRADIENT)


def test_mask_rgba_varying_colour_uses_luminance():
    rgba = np.zeros((16, 256, 4), dtype=np.uint8)
    rgba[..., :3] = GRADIENT[..., None]
    rgba[..., 3] = 255
    assert np.array_equal(decode_mask(png_b64(rgba)), GRADIENT)


def test_mask_16bit_grey_is_scaled_not_clipped():
    grey16 = GRADIENT.astype(np.uint16) * 257
    buf = io.BytesIO()
    Image.fromarray(grey16).save(buf, format="PNG")
    mask = decode_mask(base64.b64encode(buf.getvalue()).decode())
    assert mask is not None and abs(int(mask[0, 128]) - 128) <= 1 and mask.max() == 255


@pytest.mark.parametrize(
    "value",
    [
        "<start_of_mask><seg_35><seg_65><seg_12>",  # issue 3
        "<seg_1><seg_2>",  # issue 5
        [True, True, False],  # issue 4
        None,
        12,
        "",
        "data:image/jpeg;base64," + png_b64(GRADIENT),  # not PNG per its own header
        DATA_URL[: len(DATA_URL) // 2],  # truncated base64
        "data:image/png;base64,!!!not base64!!!",
        "data:image/png;base64," + base64.b64encode(b"GIF89a....").decode(),  # not a PNG
        "data:image/png;base64," + base64.b64encode(base64.b64decode(DATA_URL.split(",")[1])[:60]).decode(),  # cut PNG
    ],
)
def test_degenerate_masks_are_none(value):
    assert decode_mask(value) is None


def test_issue3_start_of_mask_tokens_keep_box():
    items = [{"box_2d": [100, 100, 200, 200], "label": "cat", "mask": "<start_of_mask><seg_35><seg_65>"}]
    answer = detect(json.dumps(items), want_masks=True)
    assert [(d.label, d.mask) for d in answer.detections] == [("cat", None)]
    assert answer.dropped == {"bad_mask": 1}


def test_issue4_boolean_mask_keeps_box():
    items = [{"box_2d": [0, 394, 1000, 1000], "label": "cat", "mask": [True, True, False]}]
    answer = detect(json.dumps(items), want_masks=True)
    assert answer.detections[0].box == NormBox(0, 394, 1000, 1000) and answer.detections[0].mask is None
    assert answer.dropped == {"bad_mask": 1}


def test_issue5_seg_tokens_keep_boxes():
    # prpl-mono#472: old parsers silently produced 0 detections; we keep every box.
    items = [{"box_2d": [1, 2, 30, 40], "label": "cat", "mask": "<seg_1><seg_9>"}] * 3
    answer = detect(json.dumps(items), want_masks=True)
    assert len(answer.detections) == 3 and answer.dropped == {"bad_mask": 3}


def test_issue16_per_item_masks_and_confidences_stay_aligned():
    # supervision drops all masks if one item lacks one, and misaligns confidences after a bad mask.
    items = [
        {"box_2d": [1, 2, 30, 40], "label": "cat", "mask": DATA_URL, "confidence": 0.9},
        {"box_2d": [1, 2, 30, 40], "label": "dog", "mask": "bad", "confidence": 0.8},
        {"box_2d": [1, 2, 30, 40], "label": "cat", "confidence": 0.7},
        {"box_2d": [1, 2, 30, 40], "label": "dog", "mask": DATA_URL},
    ]
    answer = detect(json.dumps(items), want_masks=True)
    assert [d.score for d in answer.detections] == [0.9, 0.8, 0.7, None]
    assert [d.mask is not None for d in answer.detections] == [True, False, False, True]
    assert answer.dropped == {"bad_mask": 2}


def test_masks_ignored_when_not_wanted():
    items = [{"box_2d": [1, 2, 30, 40], "label": "cat", "mask": DATA_URL}]
    answer = detect(json.dumps(items))
    assert answer.detections[0].mask is None and answer.dropped == {}


# --------------------------------------------------------------------------- choices


CHOICES = (LabelSpec("indoor"), LabelSpec("outdoor"), LabelSpec("unclear", hint="cannot tell"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('["outdoor"]', ("outdoor",)),
        ('```json\n["Outdoor"]\n```', ("outdoor",)),
        ('"indoor"', ("indoor",)),
        ('{"choices": ["indoor"]}', ("indoor",)),
        ('{"answer": "outdoor"}', ("outdoor",)),
        ("Outdoor.", ("outdoor",)),
        ("The photo was clearly taken outdoor, in a park.", ("outdoor",)),
        ("I cannot tell.", ("unclear",)),
        ('[{"label": "indoor"}]', ("indoor",)),
    ],
)
def test_choices_forms(text, expected):
    assert parse_choices(text, CHOICES, multiple=False).choices == expected


def test_single_choice_keeps_first():
    answer = parse_choices('["outdoor", "indoor"]', CHOICES, multiple=False)
    assert answer.choices == ("outdoor",) and answer.dropped == {"extra_choice": 1}


def test_multiple_choices_deduplicated_unknown_counted():
    answer = parse_choices('["indoor", "Indoor", "space", "outdoor"]', CHOICES, multiple=True)
    assert answer.choices == ("indoor", "outdoor") and answer.dropped == {"unknown_label": 1}


def test_prose_naming_several_options_in_order():
    answer = parse_choices("Both outdoor and indoor scenes appear.", CHOICES, multiple=True)
    assert answer.choices == ("outdoor", "indoor")


def test_prose_prefers_longer_option_at_same_place():
    options = (LabelSpec("grey"), LabelSpec("dark grey"))
    assert parse_choices("It is dark grey.", options, multiple=True).choices == ("dark grey",)


def test_choices_none_and_unknown():
    assert parse_choices(None, CHOICES, multiple=False).choices == ()
    answer = parse_choices("No idea at all.", CHOICES, multiple=False)
    assert answer.choices == () and answer.dropped == {"unknown_label": 1}


# --------------------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A cat on a mat.", "A cat on a mat."),
        ("  A cat\n\n on   a mat.  ", "A cat on a mat."),
        ('"A cat on a mat."', "A cat on a mat."),
        ("“A cat.”", "A cat."),
        ("```\nA cat on a mat.\n```", "A cat on a mat."),
        ('"She said \\"hi\\""', 'She said "hi"'),
        ("", None),
        ('""', None),
        (None, None),
    ],
)
def test_parse_text(text, expected):
    assert parse_text(text).text == expected


# --------------------------------------------------------------------------- never raises


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=300), st.sampled_from([None, "STOP", "MAX_TOKENS"]), st.booleans(), st.booleans())
def test_parser_never_raises_on_arbitrary_text(text, finish, masks, points):
    answer = detect(text, finish_reason=finish, want_masks=masks, want_points=points)
    labels = {s.value for s in LABELS}
    assert all(d.label in labels for d in answer.detections)
    assert all(v > 0 for v in answer.dropped.values())
    parse_choices(text, CHOICES, multiple=masks, finish_reason=finish)
    parse_text(text)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-5000, 5000) | st.floats(allow_nan=True) | st.text(max_size=20)
    | st.sampled_from(["cat", "dog", "box_2d", DATA_URL[:80], "<seg_3>"]),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(
        st.sampled_from(["box_2d", "label", "mask", "point", "confidence", "items", "image_index", "x"]), children, max_size=5
    ),
    max_leaves=25,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(JSONISH, st.integers(0, 400), st.booleans())
def test_parser_never_raises_on_jsonish_or_cut_answers(value, cut, masks):
    text = json.dumps(value)
    for candidate in (text, text[:cut], "```json\n" + text[:cut]):
        answer = detect(candidate, want_masks=masks)
        for d in answer.detections:
            assert d.box is not None and 0 <= d.box.ymin < d.box.ymax <= 1000 and 0 <= d.box.xmin < d.box.xmax <= 1000
            assert d.score is None or 0.0 <= d.score <= 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000), st.sampled_from(["cat", "dog"])), min_size=1, max_size=8), st.data())
def test_truncation_never_invents_items(rows, data):
    items = [{"box_2d": list(r[:4]), "label": r[4]} for r in rows]
    text = json.dumps(items)
    cut = data.draw(st.integers(0, len(text)))
    answer = detect(text[:cut])
    full = detect(text)
    # every recovered detection is one of the full answer's, in the same order (a prefix)
    assert boxes(answer) == boxes(full)[: len(answer.detections)]


def test_load_answer_reports_found():
    assert load_answer("nothing")[3] is False
    assert load_answer(JSON)[3] is True


def test_wrapper_cut_after_its_complete_list():
    text = json.dumps({"detections": ITEMS, "note": "all found"})[:-8]
    answer = detect(text)
    assert [d.label for d in answer.detections] == ["cat", "dog"] and answer.truncated and answer.dropped == {}


def test_cut_single_object_yields_nothing_but_a_count():
    text = '{"box_2d": [1, 2, 30, 40], "label": "cat", "mask": "data:image/png;base64,iVBOR'
    answer = detect(text, want_masks=True)
    assert answer.detections == () and answer.truncated and answer.dropped == {"truncated_item": 1}


def test_unbalanced_bracket_in_prose_before_the_json():
    answer = detect(f"I found two (see [1) of them: {JSON}")
    assert [d.label for d in answer.detections] == ["cat", "dog"]


def test_a_stray_image_index_keeps_the_detection_and_is_counted():
    """A single-image request answered with "image_index": 3 (or -1, or "x") is about the only image
    there is: the detection stays, as image 0, and the stray index is counted, never silent."""
    items = [dict(ITEMS[0], image_index=3), dict(ITEMS[0], image_index=-1), dict(ITEMS[0], image_index="x"), ITEMS[0]]
    answer = detect(json.dumps(items), n_images=1)
    assert [d.image_index for d in answer.detections] == [0, 0, 0, 0]
    assert answer.dropped.get("stray_image_index") == 3
    two = detect(json.dumps([dict(ITEMS[0], image_index=1), dict(ITEMS[0], image_index=2)]), n_images=2)
    assert [d.image_index for d in two.detections] == [1, 0] and two.dropped.get("stray_image_index") == 1
