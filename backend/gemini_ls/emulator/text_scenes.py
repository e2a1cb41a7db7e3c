"""Synthetic documents with known text: printed lines in black, "handwriting" in blue ink (an
oblique font), the ground truth for the emulator's OCR (ocr.py) and for tests.

    >>> doc = make_text_scene(900, 600, [("Invoice 4821", "printed"), ("Paid, thanks", "handwriting")])
    >>> doc.lines[0].box   # (x0, y0, x1, y1) of the inked line, in pixels
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONTS = Path("/usr/share/fonts/truetype/dejavu")  # Debian's fonts-dejavu-core
FONT = {"printed": FONTS / "DejaVuSans.ttf", "handwriting": FONTS / "DejaVuSans-Oblique.ttf"}
INK = {"printed": (20, 20, 20), "handwriting": (30, 60, 210)}


@dataclass(frozen=True)
class TextLine:
    text: str
    ink: str  # printed | handwriting
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class TextScene:
    image: Image.Image
    lines: tuple[TextLine, ...]

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


def make_text_scene(width: int, height: int, lines: Sequence[tuple[str, str]], *, size: int = 28) -> TextScene:
    """`lines` of (text, ink) one under the other on white, left-aligned, `size` px type."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    step = max(size * 2, (height - 2 * size) // max(1, len(lines)))
    out = []
    for i, (text, ink) in enumerate(lines):
        font = ImageFont.truetype(str(FONT[ink]), size)
        x, y = size * 2, size + i * step
        draw.text((x, y), text, fill=INK[ink], font=font)
        x0, y0, x1, y1 = draw.textbbox((x, y), text, font=font)
        out.append(TextLine(text, ink, (int(x0), int(y0), int(x1), int(y1))))
    return TextScene(image, tuple(out))
