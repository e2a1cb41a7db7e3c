"""What the emulator "sees": coloured shapes found by their pixels, never from any ground truth.

Pipeline: decode (raw pixel order, EXIF ignored) -> coarse copy (long side <= 2048) -> HSV ->
saturation/value gates -> nearest palette hue -> connected components per colour -> refine each
component at full resolution -> shape from fill ratio and aspect.
Low-saturation pixels (white or grey-noise backgrounds, codec haze) never pass the gates.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from .scenes import COLOURS, PALETTE

COARSE_MAX_SIDE = 2048
MIN_SATURATION = 80  # of 255; grey noise stays below ~50, half-blended object edges stay above
MIN_VALUE = 90
MIN_COMPONENT_PX = 6  # at full resolution; drops isolated codec specks


@dataclass(frozen=True, eq=False)
class SeenObject:
    """An object found in an image, in that image's raw pixel frame."""

    colour: str
    shape: str
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) half-open pixels
    mask: np.ndarray = field(repr=False)  # bool, box-sized
    area: int
    text: str | None = None  # a line of text (shape "text", colour its ink): what OCR read there (ocr.py)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def centre(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)


@dataclass(frozen=True, eq=False)
class SeenImage:
    width: int
    height: int
    objects: tuple[SeenObject, ...]
    background: str  # "white" or "grey noisy" or "plain"
    # the encoded image, for what is read only when a prompt asks (its text lines, ocr.py), memoised
    # in `derived`; the decoded pixels are not kept (the vision cache holds many images)
    source: bytes | None = field(default=None, repr=False)
    derived: dict = field(default_factory=dict, repr=False)
    scale: float = 1.0  # how much the model shrinks (<1) or enlarges it to look at it (families.at_budget)

    def dominant_colour(self) -> str | None:
        totals = colour_totals(self.objects)
        if not totals:
            return None
        return max(totals, key=lambda c: (totals[c], -COLOURS.index(c)))


def colour_totals(objects) -> dict[str, int]:
    totals: dict[str, int] = {}
    for obj in objects:
        totals[obj.colour] = totals.get(obj.colour, 0) + obj.area
    return totals


class UndecodableImage(ValueError):
    pass


def decode_raw(data: bytes) -> np.ndarray:
    """RGB uint8 pixels in stored order; EXIF orientation deliberately ignored (Gemini may too).

    HEIF is the exception by design of the format: its rotation is a container transform that
    every decoder applies.
    """
    if data[4:8] == b"ftyp":
        import pillow_heif

        pillow_heif.register_heif_opener()
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return np.asarray(img.convert("RGB"))
    except Exception as exc:  # PIL raises many types for garbage input
        raise UndecodableImage(str(exc)) from exc


def _palette_hues() -> np.ndarray:
    rgb = np.array([[PALETTE[c] for c in COLOURS]], dtype=np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[0, :, 0].astype(np.int16)


_HUES = _palette_hues()


def classify_pixels(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel palette index (0..len(COLOURS)-1), or 255 for background/unsaturated pixels."""
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV)
    hue = hsv[..., 0].astype(np.int16)
    # Circular hue distance (OpenCV hue is 0..179) to every palette hue; keep the nearest.
    best = np.zeros(hue.shape, dtype=np.uint8)
    best_d = np.full(hue.shape, 999, dtype=np.int16)
    for i, h in enumerate(_HUES):
        d = np.abs(hue - h)
        d = np.minimum(d, 180 - d)
        closer = d < best_d
        best[closer] = i
        best_d[closer] = d[closer]
    gated = (hsv[..., 1] < MIN_SATURATION) | (hsv[..., 2] < MIN_VALUE)
    best[gated] = 255
    return best


def classify_shape(mask: np.ndarray) -> str:
    h, w = mask.shape
    fill = float(mask.sum()) / float(w * h)
    aspect = max(w, h) / max(1, min(w, h))
    if fill >= 0.86:
        return "square" if aspect <= 1.35 else "rectangle"
    if fill >= 0.66:
        return "circle"
    return "triangle"


def _background_kind(rgb: np.ndarray) -> str:
    """Describe the non-object pixels, sampled at full resolution (downscaling averages noise away)."""
    step = max(1, int(max(rgb.shape[:2]) // 256))
    sample = np.ascontiguousarray(rgb[::step, ::step])
    bg = sample[classify_pixels(sample) == 255].astype(np.int16)
    if bg.size == 0:
        return "plain"
    grey = bg.mean(axis=1)
    if grey.std() > 12:
        return "grey noisy"
    return "white" if grey.mean() > 225 else "plain"


def _components(labels: np.ndarray, colour_index: int, min_px: int):
    mask = (labels == colour_index).astype(np.uint8)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    for k in range(1, n):
        x, y, w, h, area = stats[k]
        if area >= min_px:
            yield comp, k, (int(x), int(y), int(x + w), int(y + h)), int(area)


def see(rgb: np.ndarray, source: bytes | None = None) -> SeenImage:
    """Find every palette-coloured shape in an RGB image (`source`: its encoded bytes, kept for OCR)."""
    height, width = rgb.shape[:2]
    scale = max(1.0, max(width, height) / COARSE_MAX_SIDE)
    if scale > 1.0:
        coarse = cv2.resize(rgb, (max(1, round(width / scale)), max(1, round(height / scale))), interpolation=cv2.INTER_AREA)
    else:
        coarse = rgb
    labels = classify_pixels(coarse)
    min_coarse = max(2, int(MIN_COMPONENT_PX / (scale * scale)))
    found: list[SeenObject] = []
    for ci, colour in enumerate(COLOURS):
        for comp, k, box, _area in _components(labels, ci, min_coarse):
            if scale == 1.0:
                x0, y0, x1, y1 = box
                mask = comp[y0:y1, x0:x1] == k
            else:
                refined = _refine(rgb, box, scale, ci)
                if refined is None:
                    continue
                (x0, y0, x1, y1), mask = refined
            found.append(SeenObject(colour, classify_shape(mask), (x0, y0, x1, y1), mask, int(mask.sum())))
    # Reading order: top to bottom, then left to right, as the model tends to list things.
    found.sort(key=lambda o: (o.box[1], o.box[0]))
    return SeenImage(width, height, tuple(found), _background_kind(rgb), source=source)


def _refine(rgb: np.ndarray, coarse_box, scale: float, colour_index: int):
    """Re-segment one coarse component at full resolution; returns (box, mask) or None."""
    height, width = rgb.shape[:2]
    pad = int(2 * scale) + 2
    cx0, cy0, cx1, cy1 = coarse_box
    x0 = max(0, int(cx0 * scale) - pad)
    y0 = max(0, int(cy0 * scale) - pad)
    x1 = min(width, int(np.ceil(cx1 * scale)) + pad)
    y1 = min(height, int(np.ceil(cy1 * scale)) + pad)
    labels = classify_pixels(rgb[y0:y1, x0:x1])
    best = None
    for comp, k, box, area in _components(labels, colour_index, MIN_COMPONENT_PX):
        if best is None or area > best[3]:
            best = (comp, k, box, area)
    if best is None:
        return None
    comp, k, (bx0, by0, bx1, by1), _ = best
    mask = comp[by0:by1, bx0:bx1] == k
    return (x0 + bx0, y0 + by0, x0 + bx1, y0 + by1), mask


def probability_map(mask: np.ndarray, size: int = 256) -> np.ndarray:
    """A size x size uint8 probability map of a box-sized bool mask, with soft edges.

    Resize with area/linear interpolation, then a light blur, so edges ramp like a real
    probability map while the 127 iso-line stays on the object's outline.
    """
    src = mask.astype(np.float32)
    h, w = src.shape
    interp = cv2.INTER_AREA if (w >= size and h >= size) else cv2.INTER_LINEAR
    prob = cv2.resize(src, (size, size), interpolation=interp)
    prob = cv2.GaussianBlur(prob, (0, 0), sigmaX=1.2)
    return np.clip(np.rint(prob * 255.0), 0, 255).astype(np.uint8)
