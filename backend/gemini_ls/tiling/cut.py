"""Cut a rectangle of an image at full resolution for Gemini, and map Gemini's answer about it back
onto the whole image. Shared by tiling (predict.py through tiling/tiled.py) and interactive mode's
box crop (interactive/crop.py): one cut, one map.

Coordinates: Gemini answers in 0-1000 of the picture it was sent (the piece); `answer_to_image`
turns boxes, points and polygon rings into 0-1000 of the whole image (a probability map is
box-relative and needs nothing).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, replace

import cv2
import numpy as np
from PIL import Image, ImageOps

from ..detections import NORM, NormBox, NormPoint, ParsedAnswer, PolygonMask
from ..images.prepare import PreparedImage

JPEG_QUALITY = 90


@dataclass(frozen=True)
class Frame:
    """A rectangle [x0, x1) x [y0, y1) in pixels of a width x height image (as Label Studio shows it)."""

    x0: float
    y0: float
    x1: float
    y1: float
    width: int
    height: int

    def x_to_image(self, x: float) -> float:
        """0-1000 of the piece -> 0-1000 of the image, horizontally."""
        return (self.x0 + x / NORM * (self.x1 - self.x0)) / self.width * NORM

    def y_to_image(self, y: float) -> float:
        return (self.y0 + y / NORM * (self.y1 - self.y0)) / self.height * NORM


def decode_oriented(raw: bytes) -> np.ndarray:
    """The whole image at full resolution, as Label Studio shows it (EXIF applied): RGB or grey pixels."""
    with Image.open(io.BytesIO(raw)) as im:
        im.load()
        oriented = ImageOps.exif_transpose(im)
        if oriented.mode not in ("RGB", "L"):
            oriented = oriented.convert("RGB")
        return np.asarray(oriented)


def cut(pixels: np.ndarray, frame: Frame, *, name: str, max_side: int, source: str | None = None) -> PreparedImage:
    """The frame's pixels, long side <= max_side, as a JPEG for Gemini.

    `source`: the whole image's sha256; the piece is then named by it and its rectangle (a tile of
    a cached image has a stable Files API cache key whatever the encoder does), else by its bytes."""
    x0, y0, x1, y1 = int(frame.x0), int(frame.y0), int(frame.x1), int(frame.y1)
    cw, ch = x1 - x0, y1 - y0
    scale = min(1.0, max_side / max(cw, ch))
    piece = pixels[y0:y1, x0:x1]
    target = (max(1, round(cw * scale)), max(1, round(ch * scale)))
    if (piece.shape[1], piece.shape[0]) != target:
        piece = cv2.resize(piece, target, interpolation=cv2.INTER_AREA)  # ~10x faster than PIL here
    if piece.ndim == 3:
        piece = cv2.cvtColor(piece, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", piece, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("could not encode the piece as JPEG")
    data = encoded.tobytes()
    if source is not None:
        digest = hashlib.sha256(f"tile:{source}:{x0},{y0},{x1},{y1}:{target[0]}x{target[1]}".encode()).hexdigest()
    else:
        digest = hashlib.sha256(data).hexdigest()
    return PreparedImage(name=name, data=data, mime_type="image/jpeg", width=target[0], height=target[1],
                         sent_width=target[0], sent_height=target[1], sha256=digest)


def answer_to_image(answer: ParsedAnswer, frame: Frame) -> ParsedAnswer:
    """Gemini's answer about the piece `frame` -> the same answer in 0-1000 of the whole image."""
    mapped = []
    for det in answer.detections:
        box = det.box
        if box is not None:
            box = NormBox.from_corners(frame.y_to_image(box.ymin), frame.x_to_image(box.xmin),
                                       frame.y_to_image(box.ymax), frame.x_to_image(box.xmax))
        point = det.point
        if point is not None:
            point = NormPoint(y=frame.y_to_image(point.y), x=frame.x_to_image(point.x))
        polygon = det.polygon
        if polygon is not None:
            polygon = PolygonMask(tuple(tuple((frame.x_to_image(x), frame.y_to_image(y)) for x, y in ring)
                                        for ring in polygon.rings))
        mapped.append(replace(det, box=box, point=point, polygon=polygon))
    return replace(answer, detections=tuple(mapped), derived={})
