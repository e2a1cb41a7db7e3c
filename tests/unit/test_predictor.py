"""Predictor against the provider boundary (provider.py): what a provider answers becomes regions,
what it raises becomes a failed task that says it was upstream. The provider here is a plain value
of our own protocol; the real Gemini gateway is exercised over HTTP by the integration tests."""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence

from PIL import Image

from gemini_ls.detections import Detection, NormBox, ParsedAnswer
from gemini_ls.images.prepare import PreparedImage
from gemini_ls.labelconfig import parse_label_config
from gemini_ls.metrics import Metrics
from gemini_ls.plan import PlannedRequest, plan_requests
from gemini_ls.predict import Predictor
from gemini_ls.provider import CallHealth, ProviderError
from gemini_ls.settings import Settings

CONFIG = (
    '<View><Image name="a" value="$a"/><Image name="b" value="$b"/>'
    '<RectangleLabels name="r" toName="a,b"><Label value="Cat"/></RectangleLabels></View>'
)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (200, 100), (10, 200, 10)).save(out, "PNG")
    return out.getvalue()


class FixedProvider:
    """Answers every request with the same value (or raises it)."""

    def __init__(self, answer: ParsedAnswer | ProviderError) -> None:
        self._answer = answer
        self.health = CallHealth()
        self.asked: list[PlannedRequest] = []

    def answer(
        self, plan: PlannedRequest, images: Sequence[PreparedImage], *, uses: Mapping[str, int], deadline: float
    ) -> ParsedAnswer:
        self.asked.append(plan)
        if isinstance(self._answer, ProviderError):
            raise self._answer
        return self._answer


def _predict(provider: FixedProvider):
    spec = parse_label_config(CONFIG)
    task = {"id": 7, "data": {"a": "a.png", "b": "b.png"}}
    png = _png()
    return Predictor(Settings(), Metrics(), provider).predict_task(
        task, spec, plan_requests(spec), lambda ref, tid: png, deadline=time.monotonic() + 10
    )


def test_detections_land_on_the_image_each_request_was_about_whatever_index_gemini_wrote():
    # One spatial request per image; the provider reports image 0 for the first and a stray 5 for
    # the second: both must become regions on the image the request was about.
    answer = ParsedAnswer(detections=(Detection("Cat", "cat", box=NormBox(100, 100, 500, 500), score=0.9, image_index=5),))
    outcome = _predict(FixedProvider(answer))
    assert outcome.status == "ok"
    assert sorted(r["to_name"] for r in outcome.result or ()) == ["a", "b"]


def test_a_provider_error_fails_the_task_as_upstream_with_its_reason():
    provider = FixedProvider(ProviderError("gemini_rate_limited", "Gemini said 429"))
    outcome = _predict(provider)
    assert outcome.status == "failed" and outcome.upstream
    assert outcome.reason == "gemini_rate_limited" and outcome.error == "Gemini said 429"
    assert len(provider.asked) == 1  # the first failing request ends the task
