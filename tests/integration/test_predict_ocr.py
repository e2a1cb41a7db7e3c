"""Issue 23 item 3/7 (a start): Label Studio's OCR template shape against the emulator reading the
rendered text with Tesseract (real SDK over HTTP): each line a region, its label from its ink
(printed "Text" vs blue "Handwriting"), its transcription what OCR read."""

from __future__ import annotations

import difflib

from label_studio_sdk.label_interface import LabelInterface

from gemini_ls.emulator.scenes import box_iou, encode_image
from gemini_ls.emulator.text_scenes import make_text_scene
from tests.helpers import data_uri
from tests.region_parts import pixel_box, regions_by_id

CONFIG = """<View>
  <Image name="image" value="$ocr"/>
  <Labels name="label" toName="image">
    <Label value="Text" background="green"/>
    <Label value="Handwriting" background="blue"/>
  </Labels>
  <Rectangle name="bbox" toName="image" strokeWidth="3"/>
  <Polygon name="poly" toName="image" strokeWidth="3"/>
  <TextArea name="transcription" toName="image" editable="true" perRegion="true" required="true"
            maxSubmissions="1" rows="5" placeholder="Recognized Text" displayMode="region-list"/>
</View>"""
LINES = [("Invoice number 4821", "printed"), ("Total due: 129.50 EUR", "printed"),
         ("Please pay within 30 days", "handwriting"), ("Thank you for your order", "printed"),
         ("Signed by Anna Berg", "handwriting")]
INK_LABEL = {"printed": "Text", "handwriting": "Handwriting"}


def test_each_text_line_is_a_labelled_region_with_its_transcription(backend_server):
    doc = make_text_scene(900, 700, LINES)
    task = {"id": 1, "data": {"ocr": data_uri(encode_image(doc.image, "png"), "image/png")}}
    resp = backend_server.post("/predict", {"tasks": [task], "label_config": CONFIG, "params": {"context": None}})
    assert resp.status_code == 200, resp.text
    result = resp.json()["results"][0]["result"]
    assert LabelInterface(CONFIG).validate_prediction({"result": result}, return_errors=True) == []
    regions = regions_by_id(result)
    assert len(regions) == len(LINES)
    found = set()
    for parts in regions.values():
        box = pixel_box(parts["bbox"])
        line = max(doc.lines, key=lambda ln: box_iou(box, ln.box))
        assert box_iou(box, line.box) >= 0.6, (box, line)
        assert parts["label"]["value"]["labels"] == [INK_LABEL[line.ink]]
        (text,) = parts["transcription"]["value"]["text"]
        assert difflib.SequenceMatcher(None, text, line.text).ratio() >= 0.9, (text, line.text)
        found.add(line.text)
    assert found == {text for text, _ in LINES}


def test_an_image_without_text_gets_no_region(backend_server):
    doc = make_text_scene(400, 300, [])
    task = {"id": 2, "data": {"ocr": data_uri(encode_image(doc.image, "png"), "image/png")}}
    resp = backend_server.post("/predict", {"tasks": [task], "label_config": CONFIG, "params": {"context": None}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["results"][0]["result"] == []
