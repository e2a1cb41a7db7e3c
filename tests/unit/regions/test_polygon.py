from __future__ import annotations

import cv2
import numpy as np
import pytest

from gemini_ls.detections import PixelBox
from gemini_ls.regions.polygon import _pixel_count, mask_to_polygons


def rasterize(polygons, width: int, height: int) -> np.ndarray:
    canvas = np.zeros((height, width), np.uint8)
    # vertices are pixel centres (index + 0.5): back to indices for fillPoly
    pts = [np.round(np.array(p) - 0.5).astype(np.int32) for p in polygons]
    cv2.fillPoly(canvas, pts, 1)
    return canvas.astype(bool)


def iou(a, b) -> float:
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


def blob(h: int, w: int) -> np.ndarray:
    canvas = np.zeros((h, w), np.uint8)
    cv2.ellipse(canvas, (w // 2, h // 2), (w // 2 - 2, h // 3), 20, 0, 360, 1, -1)
    cv2.rectangle(canvas, (w // 5, h // 5), (w // 2, h // 2), 1, -1)
    return canvas.astype(bool)


@pytest.mark.parametrize("tolerance", [0.0, 1.0, 2.5])
def test_polygons_rasterize_back_to_the_mask(tolerance):
    width, height = 900, 700
    box = PixelBox(120, 80, 520, 380)
    region = blob(box.height, box.width)
    polygons = mask_to_polygons(region, box, tolerance=tolerance, min_area=16)
    assert len(polygons) == 1
    full = np.zeros((height, width), bool)
    full[box.y0:box.y1, box.x0:box.x1] = region
    assert iou(rasterize(polygons, width, height), full) >= 0.8
    assert iou(rasterize(polygons, width, height), full) >= 0.95  # in practice much better
    xs = [x for x, _ in polygons[0]]
    ys = [y for _, y in polygons[0]]
    assert box.x0 <= min(xs) and max(xs) <= box.x1 and box.y0 <= min(ys) and max(ys) <= box.y1


def test_simplification_reduces_points():
    box = PixelBox(0, 0, 400, 300)
    region = blob(300, 400)
    exact = mask_to_polygons(region, box, tolerance=0.0, min_area=0)[0]
    simple = mask_to_polygons(region, box, tolerance=2.0, min_area=0)[0]
    assert 3 <= len(simple) < len(exact) / 3


def test_multipart_mask_gives_several_polygons_and_drops_specks():
    region = np.zeros((200, 300), bool)
    region[10:60, 10:80] = True  # part 1
    region[100:190, 150:290] = True  # part 2
    region[5:8, 200:203] = True  # 9-pixel speck
    region[150, 20] = True  # 1-pixel speck
    box = PixelBox(50, 40, 350, 240)
    polygons = mask_to_polygons(region, box, tolerance=1.0, min_area=16)
    assert len(polygons) == 2
    back = rasterize(polygons, 400, 300)[box.y0:box.y1, box.x0:box.x1]
    expected = np.zeros_like(region)
    expected[10:60, 10:80] = expected[100:190, 150:290] = True
    assert iou(back, expected) > 0.97
    # min_area 0 keeps the 3x3 speck (a polygon) but not the single pixel (< 3 points)
    assert len(mask_to_polygons(region, box, tolerance=0.0, min_area=0)) == 3


def test_empty_mask_gives_nothing():
    assert mask_to_polygons(np.zeros((10, 10), bool), PixelBox(0, 0, 10, 10), 1.0, 0) == []


@pytest.mark.parametrize(
    "region",
    [
        np.ones((1, 1), bool),
        np.ones((4, 4), bool),
        np.ones((1, 9), bool),
        np.ones((7, 1), bool),
        np.eye(6, dtype=bool),
        np.pad(np.ones((5, 8), bool), 2),
    ],
)
def test_pick_pixel_count_is_exact(region):
    contours, _ = cv2.findContours(region.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    assert len(contours) == 1
    assert _pixel_count(contours[0]) == region.sum()
