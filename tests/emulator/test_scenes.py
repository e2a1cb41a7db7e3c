"""The scene generator: ground truth that other tests and benchmarks rely on."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from gemini_ls.emulator.scenes import (
    COLOURS,
    PALETTE,
    SHAPES,
    box_iou,
    decode_image,
    encode_image,
    make_scene,
    mask_iou,
    raw_box,
)


@pytest.mark.parametrize("size,n", [((64, 64), 30), ((64, 64), 1), ((640, 480), 12), ((8000, 600), 5), ((100, 3000), 4)])
def test_objects_fit_do_not_overlap_and_match_pixels(size, n):
    w, h = size
    scene = make_scene(w, h, n, seed=7, background="noisy")
    assert (scene.width, scene.height) == (w, h) and scene.image.size == (w, h)
    assert len(scene.objects) == n
    pixels = np.asarray(scene.image)
    taken = np.zeros((h, w), dtype=bool)
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.box
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert min(x1 - x0, y1 - y0) >= 3 and max(x1 - x0, y1 - y0) >= 8
        full = obj.full_mask(w, h)
        assert not (taken & full).any()
        taken |= full
        assert (pixels[full] == PALETTE[obj.colour]).all()
        assert obj.mask_crop.shape == (y1 - y0, x1 - x0)
        assert obj.name == f"{obj.colour} {obj.shape}" and obj.colour in COLOURS and obj.shape in SHAPES
        cx, cy = obj.centre
        assert x0 <= cx <= x1 and y0 <= cy <= y1


def test_dominant_colour_and_names():
    scene = make_scene(400, 300, names=["red square", "blue circle", "blue triangle"], seed=1)
    assert [o.name for o in scene.objects] == ["red square", "blue circle", "blue triangle"]
    areas = {c: sum(o.area for o in scene.objects if o.colour == c) for c in ("red", "blue")}
    assert scene.dominant_colour() == max(areas, key=areas.get)


def test_deterministic_per_seed():
    a, b = make_scene(300, 200, 6, seed=3), make_scene(300, 200, 6, seed=3)
    assert [o.box for o in a.objects] == [o.box for o in b.objects]
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert [o.box for o in make_scene(300, 200, 6, seed=4).objects] != [o.box for o in a.objects]


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_exif_orientation_round_trip(fmt, orientation):
    scene = make_scene(120, 80, 3, seed=2)
    data = encode_image(scene.image, fmt, orientation=orientation)
    raw = Image.open(io.BytesIO(data))
    assert (raw.getexif().get(0x0112) or 1) == orientation
    shown = np.asarray(ImageOps.exif_transpose(raw).convert("RGB"), dtype=int)
    assert shown.shape == (80, 120, 3)
    assert np.abs(shown - np.asarray(scene.image, dtype=int)).mean() < 3
    # raw_box maps displayed boxes into the stored frame
    raw_px = np.asarray(raw.convert("RGB"))
    obj = scene.objects[0]
    rx0, ry0, rx1, ry1 = raw_box(obj.box, 120, 80, orientation)
    centre = raw_px[(ry0 + ry1) // 2, (rx0 + rx1) // 2].astype(int)
    assert np.abs(centre - PALETTE[obj.colour]).max() < 40


def test_heic_encodes_and_decodes():
    scene = make_scene(200, 160, 4, seed=5)
    data = encode_image(scene.image, "heic")
    img = decode_image(data)
    assert img.size == (200, 160)
    assert np.abs(np.asarray(img, dtype=int) - np.asarray(scene.image, dtype=int)).mean() < 3


def test_iou_helpers():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    a = np.zeros((4, 4), bool)
    b = a.copy()
    a[:2] = True
    b[1:3] = True
    assert mask_iou(a, b) == pytest.approx(4 / 12)


def test_bad_arguments():
    with pytest.raises(ValueError):
        make_scene(64, 64, 200)
    with pytest.raises(ValueError):
        make_scene(64, 64, colours=["brown"])
    with pytest.raises(ValueError):
        encode_image(make_scene(64, 64).image, "gif")
