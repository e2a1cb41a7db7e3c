"""A line of text cut by a vertical tile border comes back as one region with its whole
transcription when the plan reads text (tiling/textlines.py through tiled.merge_answers); other
plans keep merge.py's rule and the best piece's answers."""

from __future__ import annotations

from gemini_ls.detections import Detection, NormBox, ParsedAnswer
from gemini_ls.tiling.grid import make_grid
from gemini_ls.tiling.textlines import join_text
from gemini_ls.tiling.tiled import merge_answers

GRID = make_grid(2000, 1000, 1, 2, 100)  # tiles [0, 1050) and [950, 2000), 1000 px high
LEFT, RIGHT = GRID.tiles


def _piece(x0, y0, x1, y1, tile, text, label="Text", score=0.9, **answers) -> Detection:
    """A detection of the pixel box (x0, y0, x1, y1) as `tile` answers it, its transcription `text`
    (a TextArea answer is a str, a Choices answer a tuple)."""
    w, h = tile.width, tile.height
    box = NormBox.from_corners((y0 - tile.y0) / h * 1000, (x0 - tile.x0) / w * 1000,
                               (y1 - tile.y0) / h * 1000, (x1 - tile.x0) / w * 1000)
    return Detection(label, label, box=box, score=score, attributes=(("transcription", text), *answers.items()))


def _texts(answer: ParsedAnswer) -> list[str]:
    return sorted(str(d.attribute("transcription")) for d in answer.detections)


def test_the_letters_both_tiles_read_are_written_once():
    assert join_text("on the mo", "orning of day 10") == "on the morning of day 10"
    assert join_text("left the northern", "northern warehouse") == "left the northern warehouse"
    assert join_text("Invoice", "4821", shared=False) == "Invoice 4821"  # apart: a space, nothing dropped
    assert join_text("Invoice", "4821") == "Invoice 4821"  # overlapping boxes, nothing in common
    assert join_text("", "4821") == "4821" and join_text("Total", "") == "Total"


def test_pieces_of_a_line_short_of_the_border_are_one_line_with_the_whole_text():
    # the reader stopped at its last legible word in each tile: neither box touches the border
    a = _piece(100, 300, 1010, 330, LEFT, "Shipment 01 left the northern", score=0.95)
    b = _piece(1040, 300, 1800, 330, RIGHT, "warehouse on the morning of day 10", score=0.8)
    other = _piece(100, 500, 900, 530, LEFT, "Total due: 129.50 EUR")
    merged = merge_answers([ParsedAnswer((a, other)), ParsedAnswer((b,))], GRID, text=True)
    assert _texts(merged) == ["Shipment 01 left the northern warehouse on the morning of day 10", "Total due: 129.50 EUR"]
    (line,) = [d for d in merged.detections if d.box.ymin < 400]
    assert round(line.box.xmin * 2) == 100 and round(line.box.xmax * 2) == 1800 and line.score == 0.95
    # without `text` (a plan reading no text) the pieces stay what merge.py makes of them
    assert len(merge_answers([ParsedAnswer((a, other)), ParsedAnswer((b,))], GRID).detections) == 3


def test_a_piece_touching_the_border_joins_the_text_of_the_other_tiles_piece():
    a = _piece(100, 300, 1050, 330, LEFT, "left the northern wareh", score=0.7)  # cut: its box reaches the edge
    b = _piece(950, 300, 1800, 330, RIGHT, "warehouse on the morning", score=0.99)
    (line,) = merge_answers([ParsedAnswer((a,)), ParsedAnswer((b,))], GRID, text=True).detections
    assert line.attribute("transcription") == "left the northern warehouse on the morning"
    # not reading text: the best-scored piece's answer, as for any object cut by a border
    (obj,) = merge_answers([ParsedAnswer((a,)), ParsedAnswer((b,))], GRID).detections
    assert obj.attribute("transcription") == "warehouse on the morning"


def test_other_answers_come_from_the_widest_piece():
    a = _piece(100, 300, 1010, 330, LEFT, "Signed by", legible=("Yes",))
    b = _piece(1040, 300, 1200, 330, RIGHT, "Anna", legible=("No",))
    (line,) = merge_answers([ParsedAnswer((a,)), ParsedAnswer((b,))], GRID, text=True).detections
    assert line.attribute("legible") == ("Yes",) and line.attribute("transcription") == "Signed by Anna"


def test_lines_apart_labels_apart_and_gaps_away_from_a_border_stay_apart():
    above = _piece(100, 300, 1010, 330, LEFT, "first line")
    below = _piece(1040, 340, 1800, 370, RIGHT, "second line")  # shares too little height: another line
    other_label = _piece(1040, 300, 1800, 330, RIGHT, "signature", label="Handwriting")
    far = _piece(1300, 300, 1800, 330, RIGHT, "far right")  # its gap to `above` is many line heights
    merged = merge_answers([ParsedAnswer((above,)), ParsedAnswer((below, other_label, far))], GRID, text=True)
    assert _texts(merged) == ["far right", "first line", "second line", "signature"]
    # two pieces in one tile far from any border: never joined, whatever their gap
    near = make_grid(2000, 1000, 1, 1, 0)
    a, b = _piece(100, 300, 500, 330, near.tiles[0], "Invoice"), _piece(520, 300, 900, 330, near.tiles[0], "4821")
    assert len(merge_answers([ParsedAnswer((a, b))], near, text=True).detections) == 2
