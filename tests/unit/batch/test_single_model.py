"""A Batch API job runs one model; batch mode sends each model's requests in a batch of their own."""

from __future__ import annotations

from gemini_ls.batch.job import requests_by_model
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.plan import plan_requests
from gemini_ls.settings import Settings

CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<RectangleLabels name="r" toName="image"><Label value="Cat"/></RectangleLabels>'
    '<BrushLabels name="b" toName="image"><Label value="Dog"/></BrushLabels>'
    '<Choices name="c" toName="image"><Choice value="Indoor"/></Choices></View>'
)


def test_default_routing_gives_one_batch_per_model_with_the_sync_paths_request_indexes():
    settings = Settings(model="gemini-3.6-flash", mask_model="gemini-2.5-flash-lite")
    plans = plan_requests(parse_label_config(CONFIG), settings.routing)
    groups = requests_by_model(plans, settings.routing.model.name)
    assert set(groups) == {"gemini-3.6-flash", "gemini-2.5-flash-lite"}
    assert sorted(i for idx in groups.values() for i in idx) == list(range(len(plans)))  # each request once
    for model, indexes in groups.items():
        for i in indexes:
            assert (plans[i].model or settings.routing.model.name) == model
    (mask_index,) = groups["gemini-2.5-flash-lite"]
    assert plans[mask_index].kind.value == "masks"


def test_one_model_for_every_request_is_one_batch():
    settings = Settings(model="gemini-2.5-flash-lite", mask_model="gemini-2.5-flash-lite")
    plans = plan_requests(parse_label_config(CONFIG), settings.routing)
    assert requests_by_model(plans, settings.routing.model.name) == {"gemini-2.5-flash-lite": tuple(range(len(plans)))}


def test_a_deprecated_name_is_grouped_under_the_model_called():
    settings = Settings(model="gemini-3.5-flash", mask_model="gemini-3.6-flash")  # 3.5 is served by 3.6
    plans = plan_requests(parse_label_config(CONFIG), settings.routing)
    assert set(requests_by_model(plans, settings.routing.model.name)) == {"gemini-3.6-flash"}
