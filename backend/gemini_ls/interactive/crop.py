"""A drawn box -> the crop Gemini is asked on, and the answer mapped back to the whole image.

Asking on a crop of the box (with a margin, so the object's edges and some context are in view)
costs fewer tokens than the whole image and shows a small object larger. The crop's long side is
at most CROP_MAX_SIDE px, cut from the full-resolution pixels (a small box keeps all its detail).

Coordinates: Gemini answers in 0-1000 of the crop; `CropFrame.to_image` maps a ParsedAnswer into
0-1000 of the whole image (boxes and polygon rings; a probability map is box-relative and needs
nothing).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, replace

import cv2
import numpy as np
from PIL import Image, ImageOps

from ..detections import NORM, NormBox, ParsedAnswer, PolygonMask
from ..images.prepare import PreparedImage
from .context import DrawnBox

CROP_MAX_SIDE = 768
MARGIN = 0.2  # of the box's size, on every side
MIN_MARGIN_PX = 8
JPEG_QUALITY = 90


@dataclass(frozen=True)
class CropFrame:
    """The crop's rectangle in pixels of the image as Label Studio shows it (w x h)."""

    x0: float
    y0: float
    x1: float
    y1: float
    width: int
    height: int

    def _x(self, x: float) -> float:
        return (self.x0 + x / NORM * (self.x1 - self.x0)) / self.width * NORM

    def _y(self, y: float) -> float:
        return (self.y0 + y / NORM * (self.y1 - self.y0)) / self.height * NORM

    def box_in_crop(self, box: DrawnBox) -> list[int]:
        """The drawn box as [ymin, xmin, ymax, xmax] in 0-1000 of the crop (what the prompt names)."""
        cw, ch = self.x1 - self.x0, self.y1 - self.y0
        x0, y0 = box.x / 100 * self.width, box.y / 100 * self.height
        x1, y1 = x0 + box.width / 100 * self.width, y0 + box.height / 100 * self.height
        return [round((y0 - self.y0) / ch * NORM), round((x0 - self.x0) / cw * NORM),
                round((y1 - self.y0) / ch * NORM), round((x1 - self.x0) / cw * NORM)]

    def to_image(self, answer: ParsedAnswer) -> ParsedAnswer:
        mapped = []
        for det in answer.detections:
            box = det.box
            if box is not None:
                box = NormBox.from_corners(self._y(box.ymin), self._x(box.xmin), self._y(box.ymax), self._x(box.xmax))
            polygon = det.polygon
            if polygon is not None:
                polygon = PolygonMask(tuple(tuple((self._x(x), self._y(y)) for x, y in ring) for ring in polygon.rings))
            mapped.append(replace(det, box=box, polygon=polygon))
        return replace(answer, detections=tuple(mapped), derived={})


def crop_frame(box: DrawnBox, width: int, height: int) -> CropFrame:
    bw, bh = box.width / 100 * width, box.height / 100 * height
    mx, my = max(MIN_MARGIN_PX, MARGIN * bw), max(MIN_MARGIN_PX, MARGIN * bh)
    x0 = max(0.0, box.x / 100 * width - mx)
    y0 = max(0.0, box.y / 100 * height - my)
    x1 = min(float(width), box.x / 100 * width + bw + mx)
    y1 = min(float(height), box.y / 100 * height + bh + my)
    # whole pixels, so the crop's pixels are exactly the frame's
    return CropFrame(float(int(x0)), float(int(y0)), float(min(width, int(x1 + 0.999))), float(min(height, int(y1 + 0.999))),
                     width, height)


def decode_oriented(raw: bytes) -> np.ndarray:
    """The whole image at full resolution, as Label Studio shows it (EXIF applied): RGB or grey pixels.

    Decoded once per task and kept (service.py): a 12 MP JPEG costs ~0.1-0.3 s to decode, and
    every box the annotator draws on that image crops from the same pixels.
    """
    with Image.open(io.BytesIO(raw)) as im:
        im.load()
        oriented = ImageOps.exif_transpose(im)
        if oriented.mode not in ("RGB", "L"):
            oriented = oriented.convert("RGB")
        return np.asarray(oriented)


def crop_image(pixels: np.ndarray, frame: CropFrame, *, name: str) -> PreparedImage:
    """The frame's pixels of the oriented image, long side <= 768 px, as a JPEG for Gemini."""
    cw, ch = frame.x1 - frame.x0, frame.y1 - frame.y0
    scale = min(1.0, CROP_MAX_SIDE / max(cw, ch))
    piece = pixels[int(frame.y0):int(frame.y1), int(frame.x0):int(frame.x1)]
    target = (max(1, round(cw * scale)), max(1, round(ch * scale)))
    if (piece.shape[1], piece.shape[0]) != target:
        piece = cv2.resize(piece, target, interpolation=cv2.INTER_AREA)  # ~10x faster than PIL here
    if piece.ndim == 3:
        piece = cv2.cvtColor(piece, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".jpg", piece, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("could not encode the crop as JPEG")
    data = encoded.tobytes()
    return PreparedImage(name=name, data=data, mime_type="image/jpeg", width=target[0], height=target[1],
                         sent_width=target[0], sent_height=target[1], sha256=hashlib.sha256(data).hexdigest())
