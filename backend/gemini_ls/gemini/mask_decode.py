"""Decoding Gemini's mask values: a PNG probability map (data URL or bare base64) or a polygon.

Every format a model family answers with (gemini/models.py MaskFormat): "data:image/png;base64,..."
or bare base64 (whitespace, missing padding and the URL-safe alphabet tolerated), or a polygon
`[[x, y], ...]` in 0-1000 of the image, one ring or a list of rings. <start_of_mask>/<seg_N>
tokens, boolean lists, rings of fewer than 3 points, truncated or undecodable data decode to None
(the caller keeps the box and counts "bad_mask").
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

import numpy as np
from PIL import Image

from ..detections import PolygonMask
from .item_fields import as_number, clamp

MAX_MASK_SIDE = 4096  # a probability map is 256x256 in practice; anything huge is garbage
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_MASK_TOKENS = re.compile(r"<\s*(?:start_of_mask|end_of_mask|seg_\d+)\s*>", re.IGNORECASE)
_DATA_URL = re.compile(r"^data:([^;,]*)(;[^,]*)?,", re.IGNORECASE)


def _b64decode(data: str) -> bytes | None:
    data = "".join(data.split())  # Gemini wraps long strings; JSON may carry \n
    data = data.replace("-", "+").replace("_", "/")  # URL-safe alphabet
    data = data.rstrip("=")
    if not data or len(data) % 4 == 1:  # one leftover char can never be valid: truncated
        return None
    data += "=" * (-len(data) % 4)
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def _to_gray(image: Image.Image) -> np.ndarray:
    """An 8-bit probability map from whatever PNG mode Gemini used.

    RGBA/LA/transparent palettes: convert("L") would throw the alpha away. When the colour is
    constant (an overlay-style mask: one colour, coverage in alpha) the alpha channel IS the
    map, so it is used; otherwise the luminance is, as for any other image.
    16-bit grey is scaled down rather than clipped, so 0..65535 keeps its shape.
    """
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = np.asarray(image.convert("RGBA"))
        colour, alpha = rgba[..., :3], rgba[..., 3]
        if (colour == colour[0, 0]).all() and alpha.min() != alpha.max():
            return np.ascontiguousarray(alpha, dtype=np.uint8)
        return np.asarray(image.convert("RGB").convert("L"), dtype=np.uint8)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        return np.clip(values / top * 255.0, 0, 255).astype(np.uint8)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def decode_mask(value: Any) -> np.ndarray | None:
    """A uint8 (h, w) probability map from Gemini's mask value, or None if it is degenerate."""
    if not isinstance(value, str):
        return None  # [true, true, ...] lists, numbers, null
    text = value.strip()
    if not text or _MASK_TOKENS.search(text):
        return None  # <start_of_mask><seg_35>...: segmentation tokens, not an image
    data_url = _DATA_URL.match(text)
    if data_url:
        mime, params = data_url.group(1).strip().lower(), (data_url.group(2) or "").lower()
        if mime != "image/png" or "base64" not in params:
            return None
        text = text[data_url.end():]
    raw = _b64decode(text)
    if raw is None or not raw.startswith(PNG_SIGNATURE):
        return None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if image.format != "PNG":
                return None
            width, height = image.size
            if not (0 < width <= MAX_MASK_SIDE and 0 < height <= MAX_MASK_SIDE):
                return None
            image.load()  # a truncated PNG fails here, not later in a converter
            mask = _to_gray(image)
    except Exception:  # PIL raises many types for corrupt data; all mean "no usable mask"
        return None
    return mask if mask.ndim == 2 and mask.size else None


MAX_RING_POINTS = 4096  # a real outline has tens of points; more is a looping answer


def _ring(value: Any) -> tuple[tuple[float, float], ...] | None:
    """[[x, y], ...] -> clamped (x, y) points; None unless every point is a pair of numbers."""
    if not isinstance(value, list) or not 3 <= len(value) <= MAX_RING_POINTS:
        return None
    points = []
    for point in value:
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            return None
        x, y = as_number(point[0]), as_number(point[1])
        if x is None or y is None:
            return None
        points.append((clamp(x), clamp(y)))
    return tuple(points)


def decode_polygon(value: Any) -> PolygonMask | None:
    """A polygon mask: one ring [[x, y], ...] or several [[[x, y], ...], ...], in 0-1000 of the image.

    Rings that are not rings (fewer than 3 points, non-numbers, no area) are left out; None when no
    ring is left. Boolean lists ([true, false, ...]) are never polygons (as_number refuses bools).
    """
    if not isinstance(value, list) or not value:
        return None
    first = value[0]
    one_ring = isinstance(first, (list, tuple)) and len(first) == 2 and not isinstance(first[0], (list, tuple))
    candidates = [value] if one_ring else value
    rings = []
    for candidate in candidates:
        ring = _ring(candidate)
        if ring is not None and _ring_area(ring) > 0:
            rings.append(ring)
    return PolygonMask(tuple(rings)) if rings else None


def _ring_area(ring: tuple[tuple[float, float], ...]) -> float:
    xs = np.array([p[0] for p in ring])
    ys = np.array([p[1] for p in ring])
    return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2.0)

