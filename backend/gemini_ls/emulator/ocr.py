"""Reading the text in an image with a real OCR engine (Tesseract, through pytesseract): each line
it reads becomes an object of shape "text" whose colour is its ink, "printed" (black or grey) or
"handwriting" (coloured ink, as the emulator's text scenes draw handwriting), found by the pixels of
its letters. Never any text from metadata.

Tesseract is Debian's `tesseract-ocr` (an executable, not a Python wheel); it runs only when a
prompt asks for text, once per image (memoised on the SeenImage).
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from .vision import SeenImage, SeenObject

MIN_CONFIDENCE = 30.0  # Tesseract's word confidence (0-100); below it a word is a guess
INK_SATURATION = 80  # of 255: letters more saturated than this are coloured ink


def _ink(rgb: np.ndarray) -> str:
    """Printed (dark, unsaturated letters) or handwriting (coloured ink), from the line's darkest pixels."""
    hsv = np.asarray(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV), dtype=np.float64)
    value = hsv[..., 2]
    letters = hsv[value <= float(np.percentile(value, 10))]
    return "handwriting" if letters.size and float(np.median(letters[:, 1])) > INK_SATURATION else "printed"


def read_lines(rgb: np.ndarray) -> tuple[SeenObject, ...]:
    import pytesseract  # imported on use: only text prompts need it

    data = pytesseract.image_to_data(Image.fromarray(rgb), output_type=pytesseract.Output.DICT)
    lines: dict[tuple[int, int, int], list[int]] = {}
    for i, word in enumerate(data["text"]):
        if word.strip() and float(data["conf"][i]) >= MIN_CONFIDENCE:
            lines.setdefault((data["block_num"][i], data["par_num"][i], data["line_num"][i]), []).append(i)
    found = []
    for words in lines.values():
        x0 = min(data["left"][i] for i in words)
        y0 = min(data["top"][i] for i in words)
        x1 = max(data["left"][i] + data["width"][i] for i in words)
        y1 = max(data["top"][i] + data["height"][i] for i in words)
        text = " ".join(data["text"][i].strip() for i in words)
        mask = np.ones((y1 - y0, x1 - x0), dtype=bool)
        found.append(SeenObject(_ink(rgb[y0:y1, x0:x1]), "text", (x0, y0, x1, y1), mask, int(mask.size), text=text))
    found.sort(key=lambda o: (o.box[1], o.box[0]))
    return tuple(found)


def text_lines(seen: SeenImage) -> tuple[SeenObject, ...]:
    """The image's lines of text (memoised); none without its encoded bytes."""
    if "text" not in seen.derived:
        lines: tuple[SeenObject, ...] = ()
        if seen.source is not None:
            with Image.open(io.BytesIO(seen.source)) as img:
                lines = read_lines(np.asarray(img.convert("RGB")))
        seen.derived["text"] = lines
    return seen.derived["text"]
