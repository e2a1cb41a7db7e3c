"""A Batch API job runs one model: batch mode checks the planned requests agree on it up front."""

from __future__ import annotations

import pytest

from gemini_ls.batch.job import BatchModelsError, single_model
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.plan import plan_requests
from gemini_ls.settings import Settings

CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<RectangleLabels name="r" toName="image"><Label value="Cat"/></RectangleLabels>'
    '<BrushLabels name="b" toName="image"><Label value="Dog"/></BrushLabels></View>'
)


def test_default_routing_sends_masks_elsewhere_and_batch_mode_says_what_to_set():
    settings = Settings(model="gemini-3.6-flash", mask_model="gemini-2.5-flash-lite")
    plans = plan_requests(parse_label_config(CONFIG), settings.routing)
    with pytest.raises(BatchModelsError) as err:
        single_model(plans, settings.routing.model.name)
    text = str(err.value)
    assert "gemini-3.6-flash" in text and "gemini-2.5-flash-lite" in text and "GEMINI_MASK_MODEL" in text


def test_one_model_for_every_request_is_the_batch_model():
    settings = Settings(model="gemini-2.5-flash-lite", mask_model="gemini-2.5-flash-lite")
    plans = plan_requests(parse_label_config(CONFIG), settings.routing)
    assert {p.model for p in plans} == {"gemini-2.5-flash-lite"}
    assert single_model(plans, settings.routing.model.name) == "gemini-2.5-flash-lite"
