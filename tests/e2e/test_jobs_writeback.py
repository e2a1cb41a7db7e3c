"""Write-back through a loopback fault proxy in front of the real Label Studio: answering 500 or
hanging (after forwarding, so Label Studio did store the chunk) is retried with backoff, nothing is
lost and nothing is written twice."""

from __future__ import annotations

import pytest

from gemini_ls.labelstudio import LabelStudioApi, LabelStudioAuth, PredictionRecord, PredictionWriter

from .jobs_helpers import FaultProxy, predictions_per_task, url_project

pytestmark = pytest.mark.e2e

VERSION = "writeback-test-v1"


def _record(tid: int) -> PredictionRecord:
    region = {"id": f"r{tid}", "from_name": "rect", "to_name": "image", "type": "rectanglelabels",
              "original_width": 320, "original_height": 240, "image_rotation": 0,
              "value": {"x": 10.0, "y": 10.0, "width": 20.0, "height": 20.0, "rotation": 0, "rectanglelabels": ["Cat"]}}
    return PredictionRecord(tid, (region,), VERSION, 0.9)


@pytest.mark.parametrize("faults", [
    [["POST", "/import/predictions", "500", 3]],
    [["POST", "/import/predictions", "hang", 1], ["POST", "/import/predictions", "500", 1]],
    [["GET", "/model-versions", "500", 2], ["POST", "/import/predictions", "hang", 2]],
], ids=["post-500-x3", "post-hang-then-500", "check-500-and-post-hang-x2"])
def test_writeback_survives_500_and_hangs(label_studio, cors_images, faults):
    ls = label_studio
    pid, ids = url_project(ls, cors_images, None, f"e2e writeback {faults[0][2]}", 25)
    proxy = FaultProxy(ls.url, rules=[list(r) for r in faults])
    try:
        api = LabelStudioApi(LabelStudioAuth(proxy.url, ls.api_key), timeout=3.0)
        sleeps: list[float] = []
        writer = PredictionWriter(api, chunk=10, attempts=6, backoff_base=0.2, backoff_cap=1.0, sleep=sleeps.append)
        report = writer.write(pid, [_record(t) for t in ids])
        assert not report.failed, report.failed
        assert sorted(report.written + report.already) == ids  # nothing lost ...
        per_task = predictions_per_task(ls, pid, VERSION)
        assert sorted(set(per_task.values())) == [1], per_task  # ... nothing twice
        assert sum(proxy.hits.values()) == sum(r[3] for r in faults)  # every fault fired
        assert len(sleeps) == sum(r[3] for r in faults)  # one backoff per failed attempt
        if any(r[2] == "hang" and "import" in r[1] for r in faults):
            assert report.already, "a hung POST that Label Studio stored must be found, not re-sent"
    finally:
        proxy.stop()


def test_writeback_gives_up_with_the_reason_and_loses_nothing_silently(label_studio, cors_images):
    ls = label_studio
    pid, ids = url_project(ls, cors_images, None, "e2e writeback down", 5)
    proxy = FaultProxy(ls.url, rules=[["POST", "/import/predictions", "500", 100]])
    try:
        api = LabelStudioApi(LabelStudioAuth(proxy.url, ls.api_key), timeout=3.0)
        writer = PredictionWriter(api, chunk=10, attempts=3, sleep=lambda s: None)
        report = writer.write(pid, [_record(t) for t in ids])
        assert sorted(report.failed) == ids and not report.written
        assert all("HTTP 500" in why for why in report.failed.values()), report.failed
        assert sum(predictions_per_task(ls, pid, VERSION).values()) == 0
    finally:
        proxy.stop()
