"""Draw Label Studio results over the image they belong to (for `gemini-ls preview`)."""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from PIL import Image, ImageDraw


def _colour(label: str) -> tuple[int, int, int]:
    hue = int(hashlib.md5(label.encode()).hexdigest()[:4], 16) / 0xFFFF
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def _label(value: Mapping[str, Any]) -> str:
    for key in ("rectanglelabels", "brushlabels", "polygonlabels", "keypointlabels"):
        if value.get(key):
            return str(value[key][0])
    return "?"


def draw_overlay(image: Image.Image, results: Iterable[Mapping[str, Any]]) -> Image.Image:
    from label_studio_sdk.converter.brush import decode_rle

    base = image.convert("RGBA")
    w, h = base.size
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    notes: list[str] = []
    line = max(2, round(min(w, h) / 250))
    for region in results:
        value = region.get("value", {})
        kind = region.get("type")
        label = _label(value)
        colour = _colour(label)
        score = region.get("score")
        caption = f"{label} {score:.2f}" if isinstance(score, (int, float)) else label
        if kind == "rectanglelabels":
            x0, y0 = value["x"] / 100 * w, value["y"] / 100 * h
            x1, y1 = x0 + value["width"] / 100 * w, y0 + value["height"] / 100 * h
            draw.rectangle([x0, y0, x1, y1], outline=colour + (255,), width=line)
            draw.text((x0 + line, y0 + line), caption, fill=colour + (255,))
        elif kind == "brushlabels" and value.get("format") == "rle":
            ow, oh = region.get("original_width", w), region.get("original_height", h)
            mask = np.asarray(decode_rle(value["rle"]), dtype=np.uint8).reshape(oh, ow, 4)[:, :, 3]
            tint = Image.new("RGBA", (ow, oh), colour + (110,))
            alpha = Image.fromarray(np.where(mask > 0, 255, 0).astype(np.uint8)).resize((w, h))
            layer.paste(tint.resize((w, h)), (0, 0), alpha)
        elif kind == "polygonlabels":
            pts = [(x / 100 * w, y / 100 * h) for x, y in value.get("points", [])]
            if len(pts) >= 3:
                draw.polygon(pts, outline=colour + (255,), width=line)
                draw.text(pts[0], caption, fill=colour + (255,))
        elif kind == "keypointlabels":
            x, y = value["x"] / 100 * w, value["y"] / 100 * h
            r = line * 3
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour + (255,), outline=(0, 0, 0, 255))
            draw.text((x + r, y - r), caption, fill=colour + (255,))
        elif kind == "choices":
            notes.append(f"{region.get('from_name')}: {', '.join(value.get('choices', []))}")
        elif kind == "textarea":
            notes.append(f"{region.get('from_name')}: {' '.join(value.get('text', []))}")
    out = Image.alpha_composite(base, layer)
    if notes:
        # Captions and classes go in a bar under the image, wrapped to its width (a long caption
        # used to run off the right edge).
        lines = [line for note in notes for line in wrap_text(note, w - 2 * NOTE_MARGIN, draw.textlength)]
        bar_h = NOTE_LINE * len(lines) + 8
        canvas = Image.new("RGBA", (w, h + bar_h), (255, 255, 255, 255))
        canvas.paste(out, (0, 0))
        d = ImageDraw.Draw(canvas)
        for i, text in enumerate(lines):
            d.text((NOTE_MARGIN, h + 4 + NOTE_LINE * i), text, fill=(0, 0, 0, 255))
        out = canvas
    return out.convert("RGB")


NOTE_MARGIN = 6  # pixels left and right of a note
NOTE_LINE = 16  # pixels per line of Pillow's default font


def wrap_text(text: str, width: float, measure: Callable[[str], float]) -> list[str]:
    """`text` in lines no wider than `width` by `measure` (pixels); words are kept whole unless
    one alone is too wide, which is then cut where it must be."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if measure(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        while measure(word) > width and len(word) > 1:
            cut = max(1, max(n for n in range(1, len(word) + 1) if n == 1 or measure(word[:n]) <= width))
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines or [""]
