"""The emulator reads rendered text with Tesseract (issue 23 item 7): lines, words and blocks against
the scene's ground truth, the unit the backend's prompt sentence asks for, text read at the scale
the model looks at the image (a page shrunk too far reads nothing), and an image without text (or
too small to read) gives no text rather than an error."""

from __future__ import annotations

import difflib
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from gemini_ls.emulator import vision
from gemini_ls.emulator.ocr import read_units, text_units
from gemini_ls.emulator.scenes import box_iou, encode_image
from gemini_ls.emulator.text_scenes import make_text_blocks, make_text_scene
from gemini_ls.emulator.understanding import read_task
from gemini_ls.textunits import GRANULARITIES, unit_sentence

BLOCKS = [(["Invoice number 4821", "Issued on 3 March 2024", "Due within thirty days"], "printed"),
          (["Paid in full by card", "Thank you"], "handwriting"),
          (["Total due: 129.50 EUR", "Bank transfer reference 77"], "printed")]


def similar(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b).ratio()


@pytest.fixture(scope="module")
def blocks():
    scene = make_text_blocks(1000, 700, BLOCKS)
    return scene, read_units(np.asarray(scene.image))


def _matches(found, truth, min_iou: float) -> None:
    """Every truth (text, ink, box) read once: same ink, a box overlapping it, the same text."""
    assert len(found) == len(truth), ([o.text for o in found], [t[0] for t in truth])
    for obj, (text, ink, box) in zip(found, truth):  # both in reading order
        assert obj.shape == "text" and obj.colour == ink, (obj.text, obj.colour, ink)
        assert box_iou(obj.box, box) >= min_iou, (obj.text, obj.box, box)
        assert similar(obj.text or "", text) >= 0.9, (obj.text, text)


def test_blocks_lines_and_words_are_read_as_the_scene_holds_them(blocks):
    scene, units = blocks
    _matches(units["block"], [(b.text, b.ink, b.box) for b in scene.blocks], 0.8)
    _matches(units["line"], [(ln.text, ln.ink, ln.box) for ln in scene.lines], 0.8)
    _matches(units["word"], list(scene.words), 0.5)
    # a block's transcription keeps its lines apart
    assert units["block"][0].text == "Invoice number 4821\nIssued on 3 March 2024\nDue within thirty days"


@pytest.mark.parametrize("unit", GRANULARITIES)
def test_the_emulator_reads_the_unit_the_backends_sentence_asks_for(unit):
    task = read_task("Return bounding boxes.", f'Detect every object:\n- "Text"\n{unit_sentence(unit)}')
    assert task.text_unit == unit
    assert read_task("", 'Detect every object:\n- "Text"').text_unit == "line"  # no sentence: lines


def _seen(image: Image.Image) -> vision.SeenImage:
    data = encode_image(image, "png")
    return vision.see(vision.decode_raw(data), source=data)


def test_text_is_read_at_the_scale_the_model_looks_at_the_image():
    doc = make_text_scene(900, 500, [("Quarterly report 2024", "printed"), ("Signed by Anna Berg", "handwriting")])
    seen = _seen(doc.image)
    whole = text_units(replace(seen, scale=1.0))
    assert [o.text for o in whole] == ["Quarterly report 2024", "Signed by Anna Berg"]
    assert [o.colour for o in whole] == ["printed", "handwriting"]
    # an image the model shrinks to a fifth: 28 px letters become 6 px, nothing is legible
    assert text_units(replace(seen, scale=0.2)) == ()
    # enlarged (a small image on a big budget) it reads as at full size, boxes in the image's pixels
    assert [o.box for o in text_units(replace(seen, scale=1.7))] == [o.box for o in whole]


@pytest.mark.parametrize("image", [Image.new("RGB", (640, 480), "white"), Image.new("RGB", (4, 4), "white"),
                                   Image.new("RGB", (1, 300), (20, 20, 20))], ids=["blank", "tiny", "one-pixel-wide"])
def test_an_image_without_legible_text_has_none(image):
    assert text_units(_seen(image), "line") == ()
    assert text_units(_seen(image), "word") == ()
