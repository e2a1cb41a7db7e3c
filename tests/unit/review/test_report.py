"""report.py and evaluate.py's pure parts: which annotations count, rendering, variants."""

from __future__ import annotations

import csv
import io
import json

import pytest
from PIL import Image

from gemini_ls.review import evaluate as ev
from gemini_ls.review import report as rp
from gemini_ls.settings import Settings
from tests.unit.review.test_match import rect

PRED_V1 = {"id": 1, "model_version": "gemini-ls-a", "result": [rect(10, 10, 20, 20, "Red", "a"), rect(50, 50, 10, 10, "Yellow", "b")]}
PRED_V2 = {"id": 2, "model_version": "gemini-ls-b", "result": [rect(10, 10, 20, 20, "Red", "a")]}
OTHER = {"id": 3, "model_version": "someone-else", "result": [rect(0, 0, 5, 5, "Red", "z")]}


def task(tid, predictions, annotations):
    return {"id": tid, "data": {"image": f"/data/{tid}.png"}, "predictions": predictions, "annotations": annotations}


TASKS = [
    task(1, [PRED_V1, OTHER], [{"id": 11, "result": [rect(10, 10, 20, 20, "Red", "a")], "updated_at": "2026-01-02T10:00:00Z"}]),
    task(2, [PRED_V1, PRED_V2], [{"id": 12, "result": [rect(12, 10, 20, 20, "Red", "a")], "updated_at": "2026-01-05T10:00:00Z"},
                                 {"id": 13, "result": [], "was_cancelled": True}]),
    task(3, [PRED_V1, PRED_V2], [{"id": 14, "parent_prediction": 1, "result": [rect(10, 10, 20, 20, "Red", "a"),
                                                                            rect(70, 70, 9, 9, "Leaf", "n")]}]),
    task(4, [OTHER], [{"id": 15, "result": []}]),  # not our prediction
]


def test_tallies_follow_the_webhooks_choice_of_prediction():
    by = rp.tallies(rp.reviewed_items(TASKS))
    assert list(by) == ["gemini-ls-b", "gemini-ls-a"]  # newest first
    a, b = by["gemini-ls-a"], by["gemini-ls-b"]
    assert a.annotations == 2 and b.annotations == 1  # task 2 -> newest (v2); task 3 -> its parent (v1)
    assert (a.labels["Red"].accepted, a.labels["Yellow"].deleted, a.labels["Leaf"].missed) == (2, 2, 1)
    assert b.labels["Red"].adjusted == 1
    since = rp.tallies(rp.reviewed_items(TASKS, rp.parse_since("2026-01-03")))
    assert since["gemini-ls-b"].annotations == 1 and since["gemini-ls-a"].annotations == 1
    assert rp.tallies(rp.reviewed_items(TASKS), "gemini-ls-b").keys() == {"gemini-ls-b"}


def test_renderings(tmp_path):
    by = rp.tallies(rp.reviewed_items(TASKS))
    table = rp.render_table(by)
    assert "model_version gemini-ls-a: 2 annotations, deletion rate 50.0 %" in table
    assert "| Yellow | 2 | 0 | 0 | 0 | 2 | 0 | 0.000 | - | - |" in table
    body = json.loads(rp.render_json(by, 7))
    assert body["model_versions"]["gemini-ls-a"]["labels"]["all"]["predicted"] == 4
    rows = list(csv.reader(io.StringIO(rp.render_csv(by))))
    assert rows[0][:3] == ["model_version", "label", "predicted"] and len(rows) == 1 + 4 + 2
    rp.render_chart(by, str(tmp_path / "c.png"), "t")
    assert Image.open(tmp_path / "c.png").size[0] > 500
    assert rp.render_table({}) == "no annotated task holds a prediction of ours"


def test_variants():
    base = Settings()
    v = ev.parse_variant("name=strict,score_threshold=0.7,max_objects=5,media_resolution=low,hint.Red=crimson", base, 0)
    assert (v.name, v.settings.defaults.score_threshold, v.settings.defaults.max_objects, v.settings.media_resolution) == (
        "strict", 0.7, 5, "LOW")
    assert v.hints == {"Red": "crimson"} and ev.parse_variant("model=gemini-2.5-pro", base, 1).name == "v2"
    for bad in ("colour=red", "max_objects=many", "nonsense", "media_resolution=ULTRA"):
        with pytest.raises(ev.VariantError):
            ev.parse_variant(bad, base, 0)
    config = '<View><Image name="i" value="$i"/><RectangleLabels name="r" toName="i"><Label value="Red"/></RectangleLabels></View>'
    assert 'hint="crimson"' in ev.with_hints(config, {"Red": "crimson"})
    with pytest.raises(ev.VariantError):
        ev.with_hints(config, {"Blue": "x"})
    truth = ev.ground_truth(TASKS, limit=2)
    assert [g.task["id"] for g in truth] == [1, 2] and truth[1].result[0]["value"]["x"] == 12
