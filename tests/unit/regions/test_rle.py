"""Our brush RLE must be byte-identical to the SDK's mask2rle of the pasted full mask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from label_studio_sdk.converter.brush import decode_rle, mask2rle

from gemini_ls.detections import PixelBox
from gemini_ls.regions.rle import encode_brush_rle, encode_full_mask


def pasted(region: np.ndarray, box: PixelBox, width: int, height: int) -> np.ndarray:
    full = np.zeros((height, width), np.uint8)
    full[box.y0:box.y1, box.x0:box.x1] = region.astype(np.uint8) * 255 if region.dtype == bool else region
    return full


@st.composite
def masks_in_boxes(draw, max_side: int = 48):
    width = draw(st.integers(1, max_side))
    height = draw(st.integers(1, max_side))
    x0 = draw(st.integers(0, width - 1))
    x1 = draw(st.integers(x0 + 1, width))
    y0 = draw(st.integers(0, height - 1))
    y1 = draw(st.integers(y0 + 1, height))
    box = PixelBox(x0, y0, x1, y1)
    kind = draw(st.sampled_from(["random", "empty", "full", "single", "blocky"]))
    shape = (box.height, box.width)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "random":
        region = rng.random(shape) < draw(st.floats(0.0, 1.0))
    elif kind == "empty":
        region = np.zeros(shape, bool)
    elif kind == "full":
        region = np.ones(shape, bool)
    elif kind == "single":
        region = np.zeros(shape, bool)
        region[rng.integers(shape[0]), rng.integers(shape[1])] = True
    else:  # long runs: a few filled rectangles
        region = np.zeros(shape, bool)
        for _ in range(3):
            a, b = sorted(rng.integers(0, shape[0] + 1, 2))
            c, d = sorted(rng.integers(0, shape[1] + 1, 2))
            region[a:b, c:d] = True
    return region, box, width, height


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(masks_in_boxes())
def test_box_encoding_is_byte_identical_to_mask2rle(case):
    region, box, width, height = case
    full = pasted(region, box, width, height)
    ours = encode_brush_rle(region, box, width, height)
    assert ours == mask2rle(full)
    assert all(type(b) is int for b in ours)  # the SDK validator rejects numpy ints


@settings(max_examples=40, deadline=None)
@given(masks_in_boxes(max_side=24))
def test_decode_round_trip(case):
    region, box, width, height = case
    full = pasted(region, box, width, height)
    decoded = decode_rle(encode_brush_rle(region, box, width, height)).reshape(height, width, 4)
    for channel in range(4):
        np.testing.assert_array_equal(decoded[:, :, channel], full)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_uint8_values_are_kept(width, height, seed):
    """uint8 regions keep their values (several levels, so runs also split between values)."""
    mask = np.random.default_rng(seed).choice(np.array([0, 7, 255], np.uint8), size=(height, width))
    assert encode_full_mask(mask) == mask2rle(mask)


@pytest.mark.parametrize(
    "height,width",
    [(1, 1), (1, 70000), (70000, 1), (300, 300), (129, 511)],  # 1xN, Nx1, runs > 65536 values
)
@pytest.mark.parametrize("fill", ["empty", "full", "dot", "border"])
def test_edge_cases(height, width, fill):
    mask = np.zeros((height, width), bool)
    if fill == "full":
        mask[:] = True
    elif fill == "dot":
        mask[height // 2, width // 2] = True
    elif fill == "border":
        mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = True
    assert encode_full_mask(mask) == mask2rle(mask.astype(np.uint8) * 255)


def test_long_zero_runs_split_like_the_sdk():
    # 4 * 200 * 400 = 320000 zeros before the box: several 65536-records plus a rest.
    width, height = 400, 500
    box = PixelBox(10, 200, 30, 260)
    region = np.ones((box.height, box.width), bool)
    assert encode_brush_rle(region, box, width, height) == mask2rle(pasted(region, box, width, height))


def test_full_width_box_rows_join():
    width, height = 12, 9
    box = PixelBox(0, 3, 12, 6)
    region = np.zeros((3, 12), bool)
    region[0, -2:] = region[1, :3] = True  # a run crossing a row boundary
    assert encode_brush_rle(region, box, width, height) == mask2rle(pasted(region, box, width, height))


def test_non_contiguous_region():
    big = np.random.default_rng(1).random((40, 60)) < 0.5
    region = big[::2, ::3]
    box = PixelBox(5, 7, 5 + region.shape[1], 7 + region.shape[0])
    assert encode_brush_rle(region, box, 50, 40) == mask2rle(pasted(region, box, 50, 40))


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        encode_brush_rle(np.ones((3, 3), bool), PixelBox(0, 0, 4, 3), 10, 10)  # shape != box
    with pytest.raises(ValueError):
        encode_brush_rle(np.ones((3, 3), bool), PixelBox(8, 8, 11, 11), 10, 10)  # box outside
    with pytest.raises(ValueError):
        encode_full_mask(np.full((2, 2), 300, np.int32))  # not a byte value
