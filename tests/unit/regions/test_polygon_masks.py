"""Polygon masks (3.x, Robotics-ER 1.6): parsed from every shape Gemini writes, rasterized at the
image's real size for BrushLabels, passed straight (simplified) to PolygonLabels.

Property: polygon -> brush RLE -> decoded mask agrees with the polygon's own rasterization (an
independent even-odd point-in-polygon test at pixel centres) everywhere except on pixels whose
centre lies within one pixel diagonal (sqrt 2) of the outline: cv2 counts edge pixels generously."""

from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from label_studio_sdk.converter.brush import decode_rle
from PIL import Image

from gemini_ls.detections import Detection, ImageMeta, ParsedAnswer, PolygonMask, RequestKind
from gemini_ls.gemini.labels import LabelMatcher
from gemini_ls.gemini.mask_decode import decode_polygon
from gemini_ls.gemini.parse import parse_detections
from gemini_ls.labelconfig import ControlSettings, ControlSpec, LabelSpec
from gemini_ls.regions.brush import BrushHandler
from gemini_ls.regions.polygon import PolygonHandler

LABELS = (LabelSpec("Cat"),)
EDGE_PX = math.sqrt(2)
MATCHER = LabelMatcher(LABELS)


def _control(tag: str, result_type: str, tolerance: float = 0.0, min_area: int = 1) -> ControlSpec:
    return ControlSpec(
        name=result_type, tag=tag, result_type=result_type, kind=RequestKind.MASKS, to_names=("image",), labels=LABELS,
        settings=ControlSettings(score_threshold=0.0, max_objects=25, mask_threshold=127,
                                 polygon_tolerance=tolerance, min_area=min_area),
    )


BRUSH = _control("BrushLabels", "brushlabels")
POLYGON = _control("PolygonLabels", "polygonlabels")


def _answer(polygon: PolygonMask) -> ParsedAnswer:
    return ParsedAnswer(detections=(Detection("Cat", "Cat", box=polygon.bounds(), polygon=polygon, score=0.9),))


# --------------------------------------------------------------------------- reference rasterization


def _inside(ring_px: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Even-odd ray casting, vectorised over points; no cv2 involved."""
    inside = np.zeros(xs.shape, dtype=bool)
    n = len(ring_px)
    for i in range(n):
        (x1, y1), (x2, y2) = ring_px[i], ring_px[(i + 1) % n]
        if y1 == y2:
            continue
        crosses = (ys >= min(y1, y2)) & (ys < max(y1, y2))
        x_at = x1 + (ys - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (xs < x_at)
    return inside


def _distance_to_outline(ring_px: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    best = np.full(xs.shape, np.inf)
    n = len(ring_px)
    for i in range(n):
        a, b = ring_px[i], ring_px[(i + 1) % n]
        d = b - a
        length = float(d @ d)
        t = np.zeros(xs.shape) if length == 0 else np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / length, 0, 1)
        best = np.minimum(best, np.hypot(xs - (a[0] + t * d[0]), ys - (a[1] + t * d[1])))
    return best


def _reference(polygon: PolygonMask, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64) + 0.5
    mask = np.zeros((h, w), dtype=bool)
    near = np.full((h, w), np.inf)
    for ring in polygon.rings:
        px = np.array(ring, dtype=np.float64) * (w / 1000.0, h / 1000.0)
        mask |= _inside(px, xs, ys)
        near = np.minimum(near, _distance_to_outline(px, xs, ys))
    return mask, near


def _decoded_brush(region: dict) -> np.ndarray:
    w, h = region["original_width"], region["original_height"]
    return np.asarray(decode_rle(region["value"]["rle"]), dtype=np.uint8).reshape(h, w, 4)[:, :, 3] > 0


# --------------------------------------------------------------------------- strategies


@st.composite
def star_ring(draw):
    """A simple polygon: vertices at increasing angles around a centre, random radii (0-1000 frame)."""
    cx = draw(st.floats(100, 900))
    cy = draw(st.floats(100, 900))
    n = draw(st.integers(3, 12))
    angles = sorted(draw(st.lists(st.floats(0, 2 * math.pi, exclude_max=True), min_size=n, max_size=n, unique=True)))
    radii = draw(st.lists(st.floats(5, 300), min_size=n, max_size=n))
    ring = tuple(
        (min(max(cx + r * math.cos(a), 0.0), 1000.0), min(max(cy + r * math.sin(a), 0.0), 1000.0))
        for a, r in zip(angles, radii)
    )
    area = abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]))) / 2
    if area < 50:
        return draw(st.nothing())
    return ring


@given(rings=st.lists(star_ring(), min_size=1, max_size=3), w=st.integers(8, 400), h=st.integers(8, 400))
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
def test_polygon_to_brush_agrees_with_the_polygons_rasterization(rings, w, h):
    polygon = PolygonMask(tuple(rings))
    image = ImageMeta("image", w, h)
    truth, near = _reference(polygon, w, h)
    results = BrushHandler().convert(BRUSH, image, _answer(polygon)).results
    brush = _decoded_brush(results[0]) if results else np.zeros((h, w), dtype=bool)
    disagree = brush != truth
    assert not disagree.any() or near[disagree].max() <= EDGE_PX, (near[disagree].max(), disagree.sum())
    if (truth & (near > EDGE_PX)).any():
        assert len(results) == 1 and results[0]["value"]["brushlabels"] == ["Cat"]


@given(ring=star_ring(), w=st.integers(50, 4000), h=st.integers(50, 4000))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
def test_polygon_labels_get_the_polygon_itself(ring, w, h):
    results = PolygonHandler().convert(POLYGON, ImageMeta("image", w, h), _answer(PolygonMask((ring,)))).results
    if not results:  # only rings under one pixel of area vanish
        assert abs(sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]))) / 2 * w * h / 1e6 < 1
        return
    (region,) = results
    points = region["value"]["points"]
    assert len(points) == len(ring)  # tolerance 0: no simplification, the very same vertices
    for (x, y), (px, py) in zip(ring, points):
        assert abs(px - x / 10) < 1e-3 and abs(py - y / 10) < 1e-3


# --------------------------------------------------------------------------- parsing every mask format


def _png(size=(8, 8)) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.full(size[::-1], 255, np.uint8), "L").save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _parse(mask, box=(100, 100, 500, 500)):
    item = {"label": "Cat", "mask": mask}
    if box is not None:
        item["box_2d"] = list(box)
    return parse_detections(json.dumps([item]), matcher=MATCHER, want_masks=True)


def test_png_with_and_without_data_prefix():
    for value in ("data:image/png;base64," + _png(), _png()):
        (det,) = _parse(value).detections
        assert det.mask is not None and det.polygon is None


def test_one_ring_and_several_rings():
    (det,) = _parse([[100, 100], [500, 120], [300, 480]]).detections
    assert det.polygon.rings == (((100.0, 100.0), (500.0, 120.0), (300.0, 480.0)),) and det.mask is None
    (det,) = _parse([[[100, 100], [200, 100], [150, 200]], [[600, 600], [700, 600], [650, 700]]]).detections
    assert len(det.polygon.rings) == 2


def test_polygon_without_box_gets_its_bounds():
    (det,) = _parse([[100, 200], [400, 220], [300, 600]], box=None).detections
    assert (det.box.xmin, det.box.ymin, det.box.xmax, det.box.ymax) == (100, 200, 400, 600)


def test_unusable_masks_keep_the_box_and_are_counted():
    for value in ("<start_of_mask><seg_35><seg_65>", [True, True, False], [[1, 2], [3, 4]], [[1, 1], [1, 1], [1, 1]], "not base64!"):
        answer = _parse(value)
        (det,) = answer.detections
        assert det.mask is None and det.polygon is None and answer.dropped == {"bad_mask": 1}, value


def test_bad_rings_are_left_out_good_ones_kept():
    polygon = decode_polygon([[[0, 0], [10, 0]], [[0, 0], [100, 0], [0, 100]], [["a", 1], [2, 3], [4, 5]]])
    assert polygon.rings == (((0.0, 0.0), (100.0, 0.0), (0.0, 100.0)),)
    assert decode_polygon([[-50, 0], [2000, 0], [0, 500]]).rings == (((0.0, 0.0), (1000.0, 0.0), (0.0, 500.0)),)
