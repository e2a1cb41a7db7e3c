"""Large photos with many small objects and a few large ones lying across the lines where a tiled
request cuts the image: the ground truth of the tiling benchmark and its integration test.

Small objects are red squares and circles of `small` px (20-40 by default), large ones blue
rectangles centred on the halves and quarters of the image (where 2x2 and 2x4 grids cut), so every
large object is cut by some tile border. Deterministic for a seed.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image

from .scenes import PALETTE, PLAIN_BACKGROUND, Scene, SceneObject, _shape_mask

SMALL_COLOUR, LARGE_COLOUR = "red", "blue"
# centres of the large objects, as fractions of (width, height): across x = 1/4, 1/2, 3/4, y = 1/2
LARGE_CENTRES = ((0.5, 0.5), (0.25, 0.75), (0.75, 0.5), (0.5, 0.2))
LARGE_SIDE = 0.12  # of the image's short side
GAP_PX = 12  # between any two objects


def _free(box: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]]) -> bool:
    x0, y0, x1, y1 = box
    return all(x1 + GAP_PX <= a or b + GAP_PX <= x0 or y1 + GAP_PX <= c or d + GAP_PX <= y0
               for a, c, b, d in taken)


def make_small_objects_scene(width: int, height: int, n_small: int = 24, *, seed: int = 0,
                             small: tuple[int, int] = (20, 40), n_large: int = len(LARGE_CENTRES)) -> Scene:
    """A plain `width` x `height` photo with `n_small` small objects and `n_large` (<= 4) large ones."""
    rng = random.Random(seed)
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = PLAIN_BACKGROUND
    objects: list[SceneObject] = []
    taken: list[tuple[int, int, int, int]] = []
    side = int(LARGE_SIDE * min(width, height))
    for fx, fy in LARGE_CENTRES[:n_large]:
        w, h = int(side * 1.6), side
        x0, y0 = int(fx * width - w / 2), int(fy * height - h / 2)
        box = (x0, y0, x0 + w, y0 + h)
        mask = _shape_mask("rectangle", w, h)
        pixels[y0:y0 + h, x0:x0 + w][mask] = PALETTE[LARGE_COLOUR]
        objects.append(SceneObject(LARGE_COLOUR, "rectangle", box, mask))
        taken.append(box)
    placed = 0
    for _ in range(200 * max(1, n_small)):
        if placed == n_small:
            break
        s = rng.randint(*small)
        x0, y0 = rng.randint(GAP_PX, width - s - GAP_PX), rng.randint(GAP_PX, height - s - GAP_PX)
        box = (x0, y0, x0 + s, y0 + s)
        if not _free(box, taken):
            continue
        shape = rng.choice(("square", "circle"))
        mask = _shape_mask(shape, s, s)
        pixels[y0:y0 + s, x0:x0 + s][mask] = PALETTE[SMALL_COLOUR]
        objects.append(SceneObject(SMALL_COLOUR, shape, box, mask))
        taken.append(box)
        placed += 1
    if placed < n_small:
        raise ValueError(f"{n_small} small objects do not fit in {width}x{height}")
    return Scene(width, height, Image.fromarray(pixels, "RGB"), tuple(objects), "plain")
