"""Lines of text cut by a vertical tile border, joined back (OCR with `model_tiling`).

A tile cut through a line of text gives two pieces whose boxes need not touch the border: a reader
stops at the last word it can read, so merge.py's rule (a piece touching the border joins the piece
that goes on past it) misses them and the line becomes two regions, each with half a transcription.
Here two pieces of one label are one line when they lie on the same line (their heights overlap by
half the smaller one) and the gap between them, at most LINE_GAP line heights, holds a vertical
tile border. Their transcriptions (TextArea answers, the `str` attributes) are joined left to
right, the characters both tiles read (in the tiles' overlap) once. Only for plans reading text.
"""

from __future__ import annotations

from ..detections import Detection, NormBox
from .grid import Grid

LINE_GAP = 1.5  # line heights: the widest gap between two pieces of one line at a border
MIN_SHARED_HEIGHT = 0.5  # of the smaller piece: on the same line


def join_text(left: str, right: str, *, shared: bool = True) -> str:
    """`left` then `right`; when their boxes overlap (`shared`: both tiles saw the same strip of
    the line), the longest run ending `left` and starting `right` is written once."""
    if not left or not right:
        return left or right
    if shared:
        for k in range(min(len(left), len(right)), 0, -1):
            if left.endswith(right[:k]):
                return left + right[k:]
    return f"{left} {right}"


def _borders(grid: Grid) -> list[float]:
    """The tile edges inside the image, as 0-1000 of its width."""
    xs = {t.x0 for t in grid.tiles if t.x0 > 0} | {t.x1 for t in grid.tiles if t.x1 < grid.width}
    return sorted(x / grid.width * 1000 for x in xs)


def _one_line(a: NormBox, b: NormBox, borders: list[float], aspect: float) -> bool:
    """a and b (0-1000 of an image `aspect` = height / width) are pieces of one line cut by a border."""
    shared = min(a.ymax, b.ymax) - max(a.ymin, b.ymin)
    if shared < MIN_SHARED_HEIGHT * min(a.ymax - a.ymin, b.ymax - b.ymin):
        return False
    left, right = (a, b) if a.xmin <= b.xmin else (b, a)
    room = LINE_GAP * max(a.ymax - a.ymin, b.ymax - b.ymin) * aspect  # line heights, in 0-1000 of the width
    if right.xmin - left.xmax > room:
        return False
    return any(left.xmax - room <= x <= right.xmin + room for x in borders)


def _find(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def line_groups(detections: list[Detection], grid: Grid) -> list[list[Detection]]:
    """The detections (0-1000 of the image) grouped: the pieces of each cut line together, left to
    right; every other detection alone."""
    borders = _borders(grid)
    aspect = grid.height / grid.width
    parent = list(range(len(detections)))
    for i, a in enumerate(detections):
        for j in range(i + 1, len(detections)):
            b = detections[j]
            if (borders and a.box is not None and b.box is not None and a.label == b.label
                    and _one_line(a.box, b.box, borders, aspect)):
                parent[_find(parent, i)] = _find(parent, j)
    groups: dict[int, list[Detection]] = {}
    for i, det in enumerate(detections):
        groups.setdefault(_find(parent, i), []).append(det)
    return [sorted(group, key=lambda d: d.box.xmin if d.box else 0.0) for group in groups.values()]


def joined_attributes(pieces: list[Detection]) -> tuple:
    """The per-region answers of one line from its pieces: transcriptions joined left to right, any
    other answer (a choice, a number, a rating) the widest piece's, which shows most of the line."""
    pieces = sorted(pieces, key=lambda d: d.box.xmin if d.box else 0.0)
    widest = max(pieces, key=lambda d: d.box.xmax - d.box.xmin if d.box else 0.0)
    attributes = []
    for name, value in widest.attributes:
        if isinstance(value, str):
            value, reach = "", -1.0  # the text so far and how far right its pieces reach
            for piece in pieces:
                text = piece.attribute(name)
                if isinstance(text, str) and piece.box is not None:
                    value = join_text(value, text, shared=piece.box.xmin < reach)
                    reach = max(reach, piece.box.xmax)
        attributes.append((name, value))
    return tuple(attributes)
