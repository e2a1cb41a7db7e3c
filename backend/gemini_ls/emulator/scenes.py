"""Synthetic scenes with known objects: the ground truth for the emulator's "vision" and for tests.

A scene is a plain or noisy background with non-overlapping filled shapes in named, well-separated
colours. Everything is deterministic for a given seed.

    >>> scene = make_scene(640, 480, 5, seed=1, background="noisy")
    >>> data = encode_image(scene.image, "jpeg", orientation=6)   # raw pixels rotated, EXIF tag 6
    >>> [o.name for o in scene.objects]                           # e.g. ["red square", ...]
    >>> scene.objects[0].box                                      # (x0, y0, x1, y1), displayed frame

Coordinates are half-open pixels in the DISPLAYED frame (what Label Studio shows after applying
EXIF orientation); `encode_image` stores transformed raw pixels so that
`PIL.ImageOps.exif_transpose(decoded) == scene.image`.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

# Saturated colours whose hues sit >= 25 degrees apart, so JPEG/webp chroma noise never moves a
# pixel to a neighbouring colour. The emulator's segmenter classifies pixels against this palette.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 130, 20),
    "yellow": (235, 205, 25),
    "green": (30, 160, 60),
    "cyan": (20, 190, 200),
    "blue": (30, 60, 210),
    "purple": (140, 40, 200),
    "magenta": (220, 40, 160),
}
COLOURS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("square", "rectangle", "circle", "triangle")
BACKGROUNDS: tuple[str, ...] = ("plain", "noisy")
FORMATS: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "heic": "image/heic"}

PLAIN_BACKGROUND = (255, 255, 255)
MIN_OBJECT_PX = 8  # smallest object side; keeps 64 px scenes with many objects detectable
RECT_ASPECT = (1.7, 2.4)  # rectangles are clearly elongated, squares are not


@dataclass(frozen=True, eq=False)
class SceneObject:
    """One filled shape. `box` is (x0, y0, x1, y1), half-open, in the displayed frame."""

    colour: str
    shape: str
    box: tuple[int, int, int, int]
    mask_crop: np.ndarray = field(repr=False)  # bool, shape (y1-y0, x1-x0)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def centre(self) -> tuple[float, float]:
        """(x, y) centre of the box, in pixels."""
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)

    @property
    def area(self) -> int:
        return int(self.mask_crop.sum())

    def full_mask(self, width: int, height: int) -> np.ndarray:
        """The object's mask pasted into a (height, width) bool canvas."""
        out = np.zeros((height, width), dtype=bool)
        x0, y0, x1, y1 = self.box
        out[y0:y1, x0:x1] = self.mask_crop
        return out


@dataclass(frozen=True, eq=False)
class Scene:
    width: int
    height: int
    image: Image.Image = field(repr=False)  # RGB, displayed frame
    objects: tuple[SceneObject, ...]
    background: str

    def dominant_colour(self) -> str:
        """The colour with the most object pixels (ties broken by palette order)."""
        totals = colour_areas(self.objects)
        return max(COLOURS, key=lambda c: (totals.get(c, 0), -COLOURS.index(c)))

    def colours(self) -> set[str]:
        return {o.colour for o in self.objects}

    def matching(self, colour: str | None = None, shape: str | None = None) -> tuple[SceneObject, ...]:
        """Objects with that colour and/or shape (None matches any)."""
        return tuple(
            o for o in self.objects if (colour is None or o.colour == colour) and (shape is None or o.shape == shape)
        )


def colour_areas(objects: Iterable[SceneObject]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for obj in objects:
        totals[obj.colour] = totals.get(obj.colour, 0) + obj.area
    return totals


def _shape_mask(shape: str, w: int, h: int) -> np.ndarray:
    canvas = Image.new("1", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    if shape in ("square", "rectangle"):
        draw.rectangle((0, 0, w - 1, h - 1), fill=1)
    elif shape == "circle":
        draw.ellipse((0, 0, w - 1, h - 1), fill=1)
    elif shape == "triangle":
        draw.polygon([(0, h - 1), (w - 1, h - 1), ((w - 1) / 2.0, 0)], fill=1)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")
    return np.array(canvas, dtype=bool)


def _noisy_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Low-saturation grey noise. A 512 px tile is repeated so 8000 px scenes stay cheap to make."""
    tile = min(512, width), min(512, height)
    grey = rng.integers(110, 200, size=(tile[1], tile[0], 1), dtype=np.int16)
    tint = rng.integers(-8, 9, size=(tile[1], tile[0], 3), dtype=np.int16)
    patch = np.clip(grey + tint, 0, 255).astype(np.uint8)
    reps = (math.ceil(height / tile[1]), math.ceil(width / tile[0]), 1)
    return np.tile(patch, reps)[:height, :width]


def _parse_names(names: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for name in names:
        colour, _, shape = name.strip().partition(" ")
        if colour not in PALETTE or shape not in SHAPES:
            raise ValueError(f"bad object name {name!r}: want '<colour> <shape>'")
        out.append((colour, shape))
    return out


def make_scene(
    width: int,
    height: int,
    n_objects: int = 3,
    *,
    seed: int = 0,
    background: str = "plain",
    colours: Sequence[str] | None = None,
    shapes: Sequence[str] | None = None,
    min_size: int | None = None,
    names: Sequence[str] | None = None,
) -> Scene:
    """Draw a scene of `n_objects` non-overlapping shapes (or exactly `names`, e.g. ["red square"]).

    Objects are placed one per cell of a jittered grid (so they never touch: each keeps a margin of
    at least 2 px / 4 % of its cell), sized 40-85 % of the cell but never below `min_size`
    (default 8 px). Colours and shapes are drawn from `colours`/`shapes` (default: all).
    Raises ValueError when the objects cannot fit.
    """
    if not (1 <= width and 1 <= height):
        raise ValueError("width and height must be positive")
    if background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}")
    rng = random.Random(seed)
    colours = tuple(colours or COLOURS)
    shapes = tuple(shapes or SHAPES)
    for c in colours:
        if c not in PALETTE:
            raise ValueError(f"unknown colour {c!r}; known: {COLOURS}")
    for s in shapes:
        if s not in SHAPES:
            raise ValueError(f"unknown shape {s!r}; known: {SHAPES}")
    specs = _parse_names(names) if names is not None else [
        (rng.choice(colours), rng.choice(shapes)) for _ in range(n_objects)
    ]
    n = len(specs)
    min_px = MIN_OBJECT_PX if min_size is None else min_size

    if background == "plain":
        pixels = np.empty((height, width, 3), dtype=np.uint8)
        pixels[:] = PLAIN_BACKGROUND
    else:
        pixels = _noisy_background(width, height, np.random.default_rng(seed))

    objects: list[SceneObject] = []
    if n:
        # Prefer ~30 % spare cells so placement looks less regular; pack tightly when crowded.
        for spare_factor in (1.3, 1.0):
            spare = max(n, math.ceil(n * spare_factor))
            cols = max(1, round(math.sqrt(spare * width / height)))
            rows = max(1, math.ceil(spare / cols))
            while rows * cols < n:
                cols += 1
            cw, ch = width / cols, height / rows
            margin = max(1, int(0.04 * min(cw, ch)))  # neighbours end up >= 2 px apart
            room_w, room_h = int(cw) - 2 * margin, int(ch) - 2 * margin
            if min(room_w, room_h) >= min_px:
                break
        else:
            raise ValueError(f"{n} objects of >= {min_px} px do not fit in {width}x{height}")
        room = min(room_w, room_h)
        cells = rng.sample(range(rows * cols), n)
        for (colour, shape), cell in zip(specs, cells):
            row, col = divmod(cell, cols)
            side = max(min_px, int(room * rng.uniform(0.40, 0.85)))
            w = h = side
            if shape == "rectangle":
                aspect = rng.uniform(*RECT_ASPECT)
                long_side = min(max(room_w, room_h), max(int(side * aspect), min_px))
                short_side = max(3, int(long_side / aspect))
                if room_w >= room_h:
                    w, h = long_side, min(short_side, room_h)
                else:
                    w, h = min(short_side, room_w), long_side
            x0 = int(col * cw) + margin + rng.randint(0, max(0, room_w - w))
            y0 = int(row * ch) + margin + rng.randint(0, max(0, room_h - h))
            mask = _shape_mask(shape, w, h)
            pixels[y0 : y0 + h, x0 : x0 + w][mask] = PALETTE[colour]
            objects.append(SceneObject(colour, shape, (x0, y0, x0 + w, y0 + h), mask))
    image = Image.fromarray(pixels, "RGB")
    return Scene(width, height, image, tuple(objects), background)


# exif_transpose applies these to the raw pixels; we store the inverse so the display is `image`.
_INVERSE_FOR_ORIENTATION: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def raw_pixels_for(image: Image.Image, orientation: int) -> Image.Image:
    """The raw pixel array a file with EXIF `orientation` must hold to display as `image`."""
    op = _INVERSE_FOR_ORIENTATION[orientation]
    return image if op is None else image.transpose(op)


def raw_box(box: tuple[int, int, int, int], width: int, height: int, orientation: int) -> tuple[int, int, int, int]:
    """Map a displayed-frame box of a width x height image into the raw (stored) pixel frame."""
    x0, y0, x1, y1 = box
    if orientation == 1:
        return box
    if orientation == 2:
        return (width - x1, y0, width - x0, y1)
    if orientation == 3:
        return (width - x1, height - y1, width - x0, height - y0)
    if orientation == 4:
        return (x0, height - y1, x1, height - y0)
    if orientation == 5:  # transpose: raw(x, y) = display(y, x)
        return (y0, x0, y1, x1)
    if orientation == 6:  # raw is display rotated 90 deg counter-clockwise
        return (y0, width - x1, y1, width - x0)
    if orientation == 7:  # transverse
        return (height - y1, width - x1, height - y0, width - x0)
    if orientation == 8:  # raw is display rotated 90 deg clockwise
        return (height - y1, x0, height - y0, x1)
    raise ValueError(f"orientation must be 1..8, got {orientation}")


def _register_heif() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()


def encode_image(image: Image.Image, fmt: str = "png", *, orientation: int = 1, quality: int = 92) -> bytes:
    """Encode `image` (the displayed frame) as png/jpeg/webp/heic.

    With orientation != 1 the stored pixels are transformed and the EXIF Orientation tag written,
    so that `PIL.ImageOps.exif_transpose(Image.open(data)) == image` (up to codec loss).
    """
    fmt = fmt.lower().replace("jpg", "jpeg").replace("heif", "heic")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {tuple(FORMATS)}")
    if orientation not in _INVERSE_FOR_ORIENTATION:
        raise ValueError(f"orientation must be 1..8, got {orientation}")
    raw = raw_pixels_for(image.convert("RGB"), orientation)
    kwargs: dict = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    buf = io.BytesIO()
    if fmt == "png":
        raw.save(buf, "PNG", compress_level=1, **kwargs)
    elif fmt == "jpeg":
        raw.save(buf, "JPEG", quality=quality, **kwargs)
    elif fmt == "webp":
        raw.save(buf, "WEBP", quality=quality, method=0, **kwargs)
    else:
        _register_heif()
        raw.save(buf, "HEIF", quality=quality, **kwargs)
    return buf.getvalue()


def decode_image(data: bytes, *, transpose: bool = False) -> Image.Image:
    """Decode any format `encode_image` writes to RGB; `transpose=True` applies EXIF orientation."""
    from PIL import ImageOps

    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftyphevc"):
        _register_heif()
    img: Image.Image = Image.open(io.BytesIO(data))
    if transpose:
        img = ImageOps.exif_transpose(img)
    return img.convert("RGB")


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two same-shaped boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def norm_box_to_pixels(box_2d: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """Gemini's [ymin, xmin, ymax, xmax] (0-1000) to an (x0, y0, x1, y1) pixel box."""
    ymin, xmin, ymax, xmax = box_2d
    return (
        round(xmin / 1000 * width),
        round(ymin / 1000 * height),
        round(xmax / 1000 * width),
        round(ymax / 1000 * height),
    )


__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "FORMATS",
    "PALETTE",
    "SHAPES",
    "Scene",
    "SceneObject",
    "box_iou",
    "colour_areas",
    "decode_image",
    "encode_image",
    "make_scene",
    "mask_iou",
    "norm_box_to_pixels",
    "raw_box",
    "raw_pixels_for",
]
