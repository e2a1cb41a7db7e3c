from __future__ import annotations

import numpy as np
import pytest

from gemini_ls.detections import PixelBox
from gemini_ls.regions.masks import mask_region


def disc_map(size: int = 256) -> np.ndarray:
    """A smooth probability map: 255 at the centre, crossing 127.5 on the inscribed circle."""
    c = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot((xx - c) / (size / 2), (yy - c) / (size / 2))
    return np.clip(255 * (1.5 - r), 0, 255).astype(np.uint8)  # 127.5 at r = 1.0


def analytic_ellipse(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return ((xx + 0.5 - width / 2) / (width / 2)) ** 2 + ((yy + 0.5 - height / 2) / (height / 2)) ** 2 <= 1


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


@pytest.mark.parametrize("width,height", [(1200, 800), (37, 91), (100, 100), (3000, 2400), (64, 40)])
def test_resized_disc_matches_the_analytic_ellipse(width, height):
    box = PixelBox(11, 5, 11 + width, 5 + height)
    region = mask_region(disc_map(), box)
    assert region.dtype == bool and region.shape == (height, width)
    assert iou(region, analytic_ellipse(width, height)) > 0.97


def test_threshold_is_strictly_greater():
    prob = np.full((4, 4), 127, np.uint8)
    box = PixelBox(0, 0, 8, 8)
    assert not mask_region(prob, box, threshold=127).any()
    assert mask_region(prob, box, threshold=126).all()


def test_one_pixel_box_and_thin_boxes():
    prob = np.full((256, 256), 200, np.uint8)
    assert mask_region(prob, PixelBox(3, 3, 4, 4)).shape == (1, 1)
    assert mask_region(prob, PixelBox(0, 0, 1, 50)).all()
    assert mask_region(prob, PixelBox(0, 0, 70, 1)).all()


def test_rejects_non_2d():
    with pytest.raises(ValueError):
        mask_region(np.zeros((2, 2, 3), np.uint8), PixelBox(0, 0, 4, 4))
