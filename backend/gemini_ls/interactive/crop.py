"""A drawn box -> the crop Gemini is asked on, and the answer mapped back to the whole image.

Asking on a crop of the box (with a margin, so the object's edges and some context are in view)
costs fewer tokens than the whole image and shows a small object larger. The crop's long side is
at most CROP_MAX_SIDE px, cut from the full-resolution pixels (a small box keeps all its detail).

Coordinates: Gemini answers in 0-1000 of the crop; `CropFrame.to_image` maps a ParsedAnswer into
0-1000 of the whole image (boxes and polygon rings; a probability map is box-relative and needs
nothing). The cut and the map are tiling/cut.py's, the same code tiles go through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..detections import NORM, ParsedAnswer
from ..images.prepare import PreparedImage
from ..tiling.cut import Frame, answer_to_image, cut, decode_oriented
from .context import DrawnBox

__all__ = ["CROP_MAX_SIDE", "CropFrame", "crop_frame", "crop_image", "decode_oriented"]

CROP_MAX_SIDE = 768
MARGIN = 0.2  # of the box's size, on every side
MIN_MARGIN_PX = 8


@dataclass(frozen=True)
class CropFrame(Frame):
    """The crop's rectangle in pixels of the image as Label Studio shows it (w x h)."""

    def box_in_crop(self, box: DrawnBox) -> list[int]:
        """The drawn box as [ymin, xmin, ymax, xmax] in 0-1000 of the crop (what the prompt names)."""
        cw, ch = self.x1 - self.x0, self.y1 - self.y0
        x0, y0 = box.x / 100 * self.width, box.y / 100 * self.height
        x1, y1 = x0 + box.width / 100 * self.width, y0 + box.height / 100 * self.height
        return [round((y0 - self.y0) / ch * NORM), round((x0 - self.x0) / cw * NORM),
                round((y1 - self.y0) / ch * NORM), round((x1 - self.x0) / cw * NORM)]

    def to_image(self, answer: ParsedAnswer) -> ParsedAnswer:
        return answer_to_image(answer, self)


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


def crop_image(pixels: np.ndarray, frame: CropFrame, *, name: str) -> PreparedImage:
    """The frame's pixels of the oriented image, long side <= 768 px, as a JPEG for Gemini."""
    return cut(pixels, frame, name=name, max_side=CROP_MAX_SIDE)
