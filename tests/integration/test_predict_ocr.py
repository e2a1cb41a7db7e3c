"""Issue 23 items 3, 7, 9 (OCR): Label Studio's OCR template shape against the emulator reading the
rendered text with Tesseract (real SDK over HTTP, our /predict): each line a region, its label from
its ink (printed "Text" vs blue "Handwriting"), its transcription what OCR read; words or blocks with
`model_ocr_granularity`; a page too tall to read whole read tile by tile with `model_tiling`; an
image without text an empty result for that task only."""

from __future__ import annotations

import pytest
from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import encode_image
from gemini_ls.emulator.text_scenes import make_text_blocks, make_text_scene
from tests.helpers import data_uri
from tests.ocr_score import score, units

TEMPLATE = """<View>
  <Image name="image" value="$ocr"/>
  <Labels name="label" toName="image">
    <Label value="Text" background="green"/>
    <Label value="Handwriting" background="blue"/>
  </Labels>
  <Rectangle name="bbox" toName="image" strokeWidth="3" {attr}/>
  <Polygon name="poly" toName="image" strokeWidth="3"/>
  <TextArea name="transcription" toName="image" editable="true" perRegion="true" required="true"
            maxSubmissions="1" rows="5" placeholder="Recognized Text" displayMode="region-list"/>
</View>"""
CONFIG = TEMPLATE.format(attr="")
LINES = [("Invoice number 4821", "printed"), ("Total due: 129.50 EUR", "printed"),
         ("Please pay within 30 days", "handwriting"), ("Thank you for your order", "printed"),
         ("Signed by Anna Berg", "handwriting")]
BLOCKS = [(["Invoice number 4821", "Issued on 3 March 2024"], "printed"),
          (["Paid in full by card", "Thank you"], "handwriting"),
          (["Total due: 129.50 EUR", "Bank transfer reference 77"], "printed")]
MODEL = "gemini-3.6-flash"  # sees an image at a fixed token budget per media-resolution level
SLOW = {"PREDICT_TIMEOUT": "240", "GEMINI_TIMEOUT": "120"}  # Tesseract per tile on a shared 2-core machine


def _task(task_id, image) -> dict:
    return {"id": task_id, "data": {"ocr": data_uri(encode_image(image, "png"), "image/png")}}


def _predict(backend, tasks, label_config=CONFIG) -> list[dict]:
    resp = backend.post("/predict", {"tasks": tasks, "label_config": label_config, "params": {"context": None}}, timeout=300)
    assert resp.status_code == 200, resp.text
    return resp.json()["results"]


def test_each_text_line_is_a_labelled_region_with_its_transcription(backend_server):
    doc = make_text_scene(900, 700, LINES)
    (prediction,) = _predict(backend_server, [_task(1, doc.image)])
    result = prediction["result"]
    assert LabelInterface(CONFIG).validate_prediction({"result": result}, return_errors=True) == []
    got = score(result, units(doc))
    assert got.found == got.total == got.regions == len(LINES) and got.worst_iou >= 0.6, got
    assert got.right_label == len(LINES)
    assert min(got.similarities) >= 0.9, got


@pytest.mark.parametrize("unit, min_iou", [("word", 0.5), ("block", 0.7)])
def test_model_ocr_granularity_gives_words_or_blocks(backend_server, unit, min_iou):
    doc = make_text_blocks(1000, 700, BLOCKS)
    label_config = TEMPLATE.format(attr=f'model_ocr_granularity="{unit}" model_max_objects="60"')
    (prediction,) = _predict(backend_server, [_task(1, doc.image)], label_config)
    result = prediction["result"]
    assert LabelInterface(label_config).validate_prediction({"result": result}, return_errors=True) == []
    truth = units(doc, unit)
    got = score(result, truth, min_iou=min_iou)
    assert got.found == got.total == got.regions == len(truth), got
    assert got.right_label == len(truth) and min(got.similarities) >= 0.9, got
    if unit == "block":  # a block's transcription keeps its lines, one per line
        texts = sorted(r["value"]["text"][0] for r in result if r["type"] == "textarea")
        assert texts == sorted(b.text for b in doc.blocks), texts


def test_a_page_too_tall_to_read_whole_is_read_tile_by_tile(backend_factory, emu):
    """30 lines on a 1240 x 7000 page (a long receipt): sent whole it is shrunk to 272 x 1536 px
    (IMAGE_MAX_SIDE) and its 28 px type to 6 px, illegible; `model_tiling="auto"` cuts it in three
    tiles (the tiling code's grid, cut and merge), each read at a legible scale."""
    lines = [(f"Item {i + 1:02d} delivered to customer {1000 + 37 * i}", "handwriting" if i % 7 == 6 else "printed")
             for i in range(30)]
    doc = make_text_scene(1240, 7000, lines)
    task = _task(1, doc.image)
    backend = backend_factory(GEMINI_MODEL=MODEL, **SLOW)
    (whole,) = _predict(backend, [task], TEMPLATE.format(attr='model_max_objects="60"'))
    emu.record(20)
    (tiled,) = _predict(backend, [task], TEMPLATE.format(attr='model_max_objects="60" model_tiling="auto"'))
    before, after = score(whole["result"], units(doc)), score(tiled["result"], units(doc))
    assert before.found <= 3, before  # whole, the page is illegible
    assert after.recall >= 0.9 and after.invented <= 1, after
    assert after.mean_similarity >= 0.9 and after.right_label == after.found, after
    assert len([body for body in emu.recorded if "contents" in body]) == 3  # one request per tile
    assert whole["model_version"] != tiled["model_version"]


def test_lines_cut_by_a_vertical_tile_border_come_back_whole(backend_factory, emu):
    """A wide page in three columns of tiles (`model_tiling="1x3"`): each tile reads its part of
    every line, stopping at its last legible letters; each line comes back as one region with its
    whole transcription (tiling/textlines.py), not as two or three pieces."""
    # lines of different words: identical lines line their letters up in columns, which Tesseract's
    # layout analysis reads as a table
    lines = [("Shipment 01 of blue widgets left the northern warehouse on the morning of day 10", "printed"),
             ("Invoice 4821 was paid in full by bank transfer from the account of Anna Berg", "printed"),
             ("Please call the customer service desk before Friday to confirm the delivery address", "handwriting"),
             ("Total amount due including shipping and all taxes: 129.50 EUR, payable within 30 days", "printed"),
             ("Quarterly report for the board meeting on 12 March, second draft with comments", "printed"),
             ("Signed on behalf of the company by the managing director and the head of sales", "handwriting")]
    doc = make_text_scene(3000, 700, lines)
    backend = backend_factory(GEMINI_MODEL=MODEL, **SLOW)
    emu.record(20)
    (tiled,) = _predict(backend, [_task(1, doc.image)], TEMPLATE.format(attr='model_max_objects="60" model_tiling="1x3"'))
    assert len([body for body in emu.recorded if "contents" in body]) == 3
    got = score(tiled["result"], units(doc))
    assert got.found == got.total == got.regions == len(lines) and got.worst_iou >= 0.8, got
    assert min(got.similarities) >= 0.95, got


def test_an_image_without_text_gets_an_empty_result_and_costs_only_its_own_task(backend_server):
    doc = make_text_scene(900, 500, LINES[:2])
    blank = make_text_scene(400, 300, [])
    tasks = [_task(1, blank.image), _task(2, doc.image), _task(3, blank.image.resize((6, 6)))]
    results = _predict(backend_server, tasks)
    assert [r.get("result") for r in (results[0], results[2])] == [[], []]
    assert "error" not in results[0] and "error" not in results[2]
    assert score(results[1]["result"], units(doc)).found == 2
