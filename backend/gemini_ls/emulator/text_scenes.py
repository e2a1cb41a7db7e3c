"""Synthetic documents with known text: printed lines in black, "handwriting" in blue ink (an
oblique font), the ground truth for the emulator's OCR (ocr.py) and for tests: every line's box and
text, every word's box, and (make_text_blocks) paragraphs.

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

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class TextLine:
    text: str
    ink: str  # printed | handwriting
    box: Box
    words: tuple[tuple[str, Box], ...] = ()  # each word and its inked box


@dataclass(frozen=True)
class TextBlock:
    """A paragraph: lines set close together, one ink."""

    lines: tuple[TextLine, ...]

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    @property
    def ink(self) -> str:
        return self.lines[0].ink

    @property
    def box(self) -> Box:
        return (min(ln.box[0] for ln in self.lines), min(ln.box[1] for ln in self.lines),
                max(ln.box[2] for ln in self.lines), max(ln.box[3] for ln in self.lines))


@dataclass(frozen=True)
class TextScene:
    image: Image.Image
    lines: tuple[TextLine, ...]
    blocks: tuple[TextBlock, ...] = ()  # make_text_blocks only

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    @property
    def words(self) -> tuple[tuple[str, str, Box], ...]:
        """(word, ink, box) of every word, line by line."""
        return tuple((word, line.ink, box) for line in self.lines for word, box in line.words)


def _box(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font: ImageFont.FreeTypeFont) -> Box:
    x0, y0, x1, y1 = draw.textbbox(xy, text, font=font)
    return (int(x0), int(y0), int(x1), int(y1))


def _draw_line(draw: ImageDraw.ImageDraw, x: int, y: int, text: str, ink: str, size: int) -> TextLine:
    font = ImageFont.truetype(str(FONT[ink]), size)
    draw.text((x, y), text, fill=INK[ink], font=font)
    words = []
    at = 0
    for word in text.split():
        at = text.index(word, at)
        words.append((word, _box(draw, (x + draw.textlength(text[:at], font=font), y), word, font)))
        at += len(word)
    return TextLine(text, ink, _box(draw, (x, y), text, font), tuple(words))


def make_text_scene(width: int, height: int, lines: Sequence[tuple[str, str]], *, size: int = 28) -> TextScene:
    """`lines` of (text, ink) one under the other on white, left-aligned, `size` px type."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    step = max(size * 2, (height - 2 * size) // max(1, len(lines)))
    out = [_draw_line(draw, size * 2, size + i * step, text, ink, size) for i, (text, ink) in enumerate(lines)]
    return TextScene(image, tuple(out))


def make_text_blocks(width: int, height: int, blocks: Sequence[tuple[Sequence[str], str]], *, size: int = 28) -> TextScene:
    """Paragraphs of (lines, ink): a block's lines 1.5 x `size` apart, blocks 4 x `size` apart, so
    a layout analysis tells them apart as a reader does."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    y = size
    out = []
    for texts, ink in blocks:
        mine = []
        for text in texts:
            mine.append(_draw_line(draw, size * 2, y, text, ink, size))
            y += size * 3 // 2
        out.append(TextBlock(tuple(mine)))
        y += size * 4
    return TextScene(image, tuple(line for block in out for line in block.lines), tuple(out))
