"""Tile answers back on the image (tiling/tiled.py, tiling/cut.py) and the settings that ask for
tiling and a media resolution: label config, plans, model_version, the wire."""

from __future__ import annotations

import numpy as np
import pytest
from google.genai import types

from gemini_ls.detections import Detection, NormBox, NormPoint, ParsedAnswer, PolygonMask, RequestKind
from gemini_ls.gemini.client import generation_config, per_part_media_resolution
from gemini_ls.gemini.kinds import prompt_for
from gemini_ls.labelconfig import Defaults, LabelConfigError, parse_label_config
from gemini_ls.modelversion import label_set_digest
from gemini_ls.plan import plan_requests
from gemini_ls.settings import Settings
from gemini_ls.tiling.cut import Frame, answer_to_image, cut
from gemini_ls.tiling.grid import make_grid
from gemini_ls.tiling.tiled import answer_tiles, merge_answers

GRID = make_grid(2000, 1000, 1, 2, 100)  # tiles [0, 1050) and [950, 2000), 1000 px high


def _norm_box(x0, y0, x1, y1, tile):
    """A pixel box of the image as 0-1000 of `tile`."""
    w, h = tile.width, tile.height
    return NormBox.from_corners((y0 - tile.y0) / h * 1000, (x0 - tile.x0) / w * 1000,
                                (y1 - tile.y0) / h * 1000, (x1 - tile.x0) / w * 1000)


def _as_pixels(box: NormBox, width=2000, height=1000):
    return (box.xmin / 1000 * width, box.ymin / 1000 * height, box.xmax / 1000 * width, box.ymax / 1000 * height)


def test_a_box_cut_by_the_border_comes_back_as_one_detection_with_its_masks_joined():
    left, right = GRID.tiles
    full = np.full((64, 64), 255, np.uint8)  # 2.5's box-relative probability map, all object
    a = Detection("Blue", "blue", box=_norm_box(700, 300, 1050, 700, left), mask=full, score=0.8)
    b = Detection("Blue", "blue", box=_norm_box(950, 300, 1500, 700, right), mask=full, score=0.95)
    (det,) = merge_answers([ParsedAnswer((a,)), ParsedAnswer((b,))], GRID).detections
    assert _as_pixels(det.box) == pytest.approx((700, 300, 1500, 700), abs=1)
    assert det.score == 0.95 and det.mask is not None and det.mask.shape == (400, 800) and det.mask.min() == 255


def test_polygon_pieces_are_joined_into_one_outline_and_a_duplicate_is_dropped():
    left, right = GRID.tiles

    def ring(x0, y0, x1, y1, tile):
        b = _norm_box(x0, y0, x1, y1, tile)
        return PolygonMask((((b.xmin, b.ymin), (b.xmax, b.ymin), (b.xmax, b.ymax), (b.xmin, b.ymax)),))

    a = Detection("Blue", "blue", box=_norm_box(700, 300, 1050, 700, left), polygon=ring(700, 300, 1050, 700, left))
    b = Detection("Blue", "blue", box=_norm_box(950, 300, 1500, 700, right), polygon=ring(950, 300, 1500, 700, right))
    small_l = Detection("Red", "red", box=_norm_box(980, 100, 1010, 130, left))  # in the overlap: seen twice
    small_r = Detection("Red", "red", box=_norm_box(981, 100, 1010, 131, right))
    out = merge_answers([ParsedAnswer((a, small_l)), ParsedAnswer((b, small_r))], GRID).detections
    assert sorted(d.label for d in out) == ["Blue", "Red"]
    blue = next(d for d in out if d.label == "Blue")
    xs = [x / 1000 * 2000 for x, _ in blue.polygon.rings[0]]
    assert min(xs) == pytest.approx(700, abs=2) and max(xs) == pytest.approx(1500, abs=2)


def test_points_and_lone_detections_are_only_moved_to_the_image_frame():
    right = GRID.tiles[1]
    det = Detection("Red", "red", box=_norm_box(1200, 100, 1240, 140, right), score=0.7)
    point = Detection("Red", "red", point=NormPoint(y=500, x=500))
    out = merge_answers([ParsedAnswer(dropped={"bad_box": 1}), ParsedAnswer((det, point))], GRID)
    moved, loose = out.detections
    assert _as_pixels(moved.box) == pytest.approx((1200, 100, 1240, 140), abs=0.5) and moved.score == 0.7
    assert loose.point.x == pytest.approx((950 + 525) / 2000 * 1000) and loose.point.y == 500
    assert out.dropped == {"bad_box": 1}


def test_tiles_are_cut_at_full_resolution_keyed_by_their_image_and_rectangle():
    pixels = np.zeros((1000, 2000, 3), np.uint8)
    pixels[300:700, 700:1500] = (30, 60, 210)
    asked = []

    def ask(index, tile):
        asked.append(tile)
        t = GRID.tiles[index]
        x0, x1 = max(700, t.x0), min(1500, t.x1)
        return ParsedAnswer((Detection("Blue", "blue", box=_norm_box(x0, 300, x1, 700, t)),))

    out = answer_tiles(pixels, GRID, ask, name="image", max_side=525, source="abc")
    assert [(t.width, t.height) for t in asked] == [(525, 500), (525, 500)]  # downscaled to max_side after the cut
    again = cut(pixels, Frame(0, 0, 1050, 1000, 2000, 1000), name="image", max_side=525, source="abc")
    assert again.sha256 == asked[0].sha256 != asked[1].sha256
    (det,) = out.detections
    assert _as_pixels(det.box) == pytest.approx((700, 300, 1500, 700), abs=1)


def test_answer_to_image_maps_boxes_points_and_rings():
    frame = Frame(100, 50, 300, 250, 1000, 500)
    det = Detection("Red", "red", box=NormBox(0, 0, 1000, 1000), point=NormPoint(500, 500),
                    polygon=PolygonMask((((0.0, 0.0), (1000.0, 0.0), (1000.0, 1000.0)),)))
    (out,) = answer_to_image(ParsedAnswer((det,)), frame).detections
    assert (out.box.xmin, out.box.ymin, out.box.xmax, out.box.ymax) == pytest.approx((100, 100, 300, 500))
    assert (out.point.x, out.point.y) == pytest.approx((200, 300))
    assert out.polygon.rings[0][1] == pytest.approx((300, 100))


RECT = '<View><Image name="image" value="$image"/><RectangleLabels name="r" toName="image" {}><Label value="A"/></RectangleLabels>' \
       '<Choices name="c" toName="image"><Choice value="x"/></Choices></View>'


def test_model_tiling_and_media_resolution_from_the_config_and_the_environment():
    spec = parse_label_config(RECT.format('model_tiling="2X3" model_media_resolution="ultra_high"'))
    assert (spec.controls[0].settings.tiling, spec.controls[0].settings.media_resolution) == ("2x3", "ULTRA_HIGH")
    spec = parse_label_config(RECT.format(""), Defaults(tiling="auto", media_resolution="LOW"))
    assert (spec.controls[0].settings.tiling, spec.controls[1].settings.media_resolution) == ("auto", "LOW")
    for bad in ('model_tiling="3"', 'model_tiling="9x9"', 'model_media_resolution="ULTRA"'):
        with pytest.raises(LabelConfigError):
            parse_label_config(RECT.format(bad))


def test_only_spatial_plans_tile_and_their_media_resolution_is_the_controls():
    spec = parse_label_config(RECT.format('model_tiling="auto"'), Defaults(media_resolution="MEDIUM"))
    rect, choice = plan_requests(spec)
    assert (rect.tiling, rect.media_resolution) == ("auto", "MEDIUM")
    assert (choice.tiling, choice.media_resolution) == ("off", "MEDIUM")
    assert prompt_for(rect, 1).media_resolution == "MEDIUM"


def test_model_version_moves_with_tiling_and_media_resolution_and_holds_without_them():
    plain = label_set_digest(parse_label_config(RECT.format("")))
    assert plain == label_set_digest(parse_label_config(RECT.format('model_tiling="off"')))
    assert plain != label_set_digest(parse_label_config(RECT.format('model_tiling="auto"')))
    assert plain != label_set_digest(parse_label_config(RECT.format(""), Defaults(media_resolution="HIGH")))


def test_the_plans_level_goes_per_part_on_3x_and_request_wide_on_2x():
    spec = parse_label_config(RECT.format('model_media_resolution="ULTRA_HIGH"'))
    prompt = prompt_for(plan_requests(spec)[0], 1)
    s = Settings(media_resolution="LOW")  # the plan's level wins over GEMINI_MEDIA_RESOLUTION
    part = per_part_media_resolution(s, "gemini-3.6-flash", prompt)
    assert part.level == types.PartMediaResolutionLevel.MEDIA_RESOLUTION_ULTRA_HIGH
    config = generation_config(s, prompt, RequestKind.BOXES, "gemini-2.5-flash-lite")
    assert config.media_resolution == types.MediaResolution.MEDIA_RESOLUTION_HIGH  # 2.x has no ULTRA_HIGH
    assert per_part_media_resolution(s, "gemini-2.5-flash-lite", prompt) is None
