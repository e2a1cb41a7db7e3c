"""Reading the text in an image with a real OCR engine (Tesseract, through pytesseract): each line,
word or block (paragraph) it reads becomes an object of shape "text" whose colour is its ink,
"printed" (black or grey) or "handwriting" (coloured ink, as the emulator's text scenes draw
handwriting), found by the pixels of its letters. Never any text from metadata.

The model looks at an image scaled to its token budget (families.at_budget sets `SeenImage.scale`),
so text is read from the pixels at that scale: a long page sent whole is shrunk until its letters
are a few pixels tall and nothing can be read, which is why the backend tiles it (model_tiling).
Text shorter than MIN_LEGIBLE_PX at that scale is not seen, the rule families.py applies to shapes.

Tesseract is Debian's `tesseract-ocr` (an executable, not a Python wheel); it runs only when a
prompt asks for text, once per image and scale (memoised on the SeenImage). An image it cannot read
(too small, a Tesseract failure) has no text: an empty answer, never an error.
"""

from __future__ import annotations

import io
import logging

import cv2
import numpy as np
from PIL import Image

from .vision import SeenImage, SeenObject

log = logging.getLogger("gemini_ls.emulator.ocr")

MIN_CONFIDENCE = 30.0  # Tesseract's word confidence (0-100); below it a word is a guess
INK_SATURATION = 80  # of 255: letters more saturated than this are coloured ink
MIN_LEGIBLE_PX = 10  # text shorter than this, as the model sees it, is not read (families.MIN_VISIBLE_PX)
MIN_SIDE_PX = 8  # Tesseract reads nothing on smaller images (and some of its versions fail)
TESSERACT_TIMEOUT_S = 60  # one image's reading; past it the image has no text
# Tesseract's word grouping for each unit: words sharing these keys are one unit
UNIT_KEYS = {"word": ("block_num", "par_num", "line_num", "word_num"),
             "line": ("block_num", "par_num", "line_num"),
             "block": ("block_num", "par_num")}

Words = list[tuple[dict[str, int], str]]  # (Tesseract's row: its keys and box, the word)


def _ink(rgb: np.ndarray) -> str:
    """Printed (dark, unsaturated letters) or handwriting (coloured ink), from the unit's darkest pixels."""
    hsv = np.asarray(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2HSV), dtype=np.float64)
    value = hsv[..., 2]
    letters = hsv[value <= float(np.percentile(value, 10))]
    return "handwriting" if letters.size and float(np.median(letters[:, 1])) > INK_SATURATION else "printed"


def read_words(rgb: np.ndarray) -> Words:
    """Tesseract's confident words, in its reading order, boxes in `rgb`'s pixels."""
    import pytesseract  # imported on use: only text prompts need it

    if min(rgb.shape[:2]) < MIN_SIDE_PX:
        return []
    try:
        data = pytesseract.image_to_data(Image.fromarray(rgb), output_type=pytesseract.Output.DICT,
                                         timeout=TESSERACT_TIMEOUT_S)
    except (pytesseract.TesseractError, RuntimeError) as exc:  # RuntimeError: pytesseract's timeout
        log.warning("Tesseract could not read a %dx%d image: %s", rgb.shape[1], rgb.shape[0], exc)
        return []
    keys = ("block_num", "par_num", "line_num", "word_num", "left", "top", "width", "height")
    return [({k: int(data[k][i]) for k in keys}, word.strip())
            for i, word in enumerate(data["text"])
            if word.strip() and float(data["conf"][i]) >= MIN_CONFIDENCE]


def group_units(rgb: np.ndarray, words: Words, unit: str, scale: float = 1.0) -> tuple[SeenObject, ...]:
    """`words` (read from `rgb`, an image shrunk by `scale`) as units of text in the full image's
    pixels, in reading order: a block's text is its lines, one per line of the answer."""
    groups: dict[tuple[int, ...], Words] = {}
    for row, word in words:
        groups.setdefault(tuple(row[k] for k in UNIT_KEYS[unit]), []).append((row, word))
    found = []
    for members in groups.values():
        x0 = min(r["left"] for r, _ in members)
        y0 = min(r["top"] for r, _ in members)
        x1 = max(r["left"] + r["width"] for r, _ in members)
        y1 = max(r["top"] + r["height"] for r, _ in members)
        if y1 - y0 < MIN_LEGIBLE_PX:
            continue
        lines: dict[int, list[str]] = {}
        for row, word in members:
            lines.setdefault(row["line_num"], []).append(word)
        text = "\n".join(" ".join(ws) for ws in lines.values())
        box = (round(x0 / scale), round(y0 / scale), round(x1 / scale), round(y1 / scale))
        mask = np.ones((box[3] - box[1], box[2] - box[0]), dtype=bool)
        found.append(SeenObject(_ink(rgb[y0:y1, x0:x1]), "text", box, mask, int(mask.size), text=text))
    return tuple(found)  # Tesseract's reading order (a line's words left to right, columns in turn)


def read_units(rgb: np.ndarray, scale: float = 1.0) -> dict[str, tuple[SeenObject, ...]]:
    """Every unit (line, word, block) of the text in `rgb` (an image shrunk by `scale`), in the full
    image's pixels: Tesseract runs once, the units are its groupings of the same words."""
    words = read_words(rgb)
    return {unit: group_units(rgb, words, unit, scale) for unit in UNIT_KEYS}


def _looked_at(seen: SeenImage) -> tuple[np.ndarray, float]:
    """The image's pixels as the model looks at them (never enlarged: that adds no detail), and the scale."""
    assert seen.source is not None
    with Image.open(io.BytesIO(seen.source)) as img:
        rgb = np.asarray(img.convert("RGB"))
    scale = min(1.0, seen.scale)
    if scale < 1.0:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return rgb, scale


def text_units(seen: SeenImage, unit: str = "line") -> tuple[SeenObject, ...]:
    """The image's units of text as the model sees it (memoised per scale: the objects, not the
    pixels); none without its encoded bytes."""
    if seen.source is None:
        return ()
    key = ("text", round(min(1.0, seen.scale), 4))
    if key not in seen.derived:
        seen.derived[key] = read_units(*_looked_at(seen))
    return seen.derived[key][unit]
