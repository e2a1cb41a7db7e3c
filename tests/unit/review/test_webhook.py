"""ReviewService: Label Studio's webhook bodies -> the ledger (Label Studio's API replaced by a
table of predictions per task; the real round trip is tests/e2e/test_review_loop.py)."""

from __future__ import annotations

from gemini_ls.labelstudio import LabelStudioApiError as LabelStudioReadError
from gemini_ls.metrics import Metrics
from gemini_ls.review.ledger import MemoryLedger, RedisLedger
from gemini_ls.review.webhook import ReviewService, our_prediction
from tests.unit.review.test_match import rect

OURS_OLD = {"id": 1, "model_version": "gemini-ls-a", "result": [rect(10, 10, 20, 20, "Red", "a")]}
OURS_NEW = {"id": 2, "model_version": "gemini-ls-b", "result": [rect(10, 10, 20, 20, "Red", "a"), rect(60, 60, 9, 9, "Red", "b")]}
THEIRS = {"id": 3, "model_version": "yolo", "result": []}


class TableReader:
    def __init__(self, predictions):
        self.table = predictions

    def predictions(self, task_id):
        if task_id not in self.table:
            raise LabelStudioReadError(f"GET /api/predictions?task={task_id}: HTTP 404")
        return self.table[task_id]

    def annotation(self, annotation_id):
        return {"id": annotation_id, "task": 5, "project": 9, "result": [rect(10, 10, 20, 20, "Red", "a")]}


def body(action, aid, result, task=5, **extra):
    return {"action": action, "annotation": {"id": aid, "task": task, "result": result, **extra}, "project": {"id": 9}}


def test_created_replayed_updated_deleted():
    ledger = MemoryLedger()
    svc = ReviewService(ledger, TableReader({5: [OURS_OLD, OURS_NEW, THEIRS]}), Metrics())
    out = svc.handle(body("ANNOTATION_CREATED", 1, [rect(10, 10, 20, 20, "Red", "a")]))
    assert out["verdict"] == {"accepted": 1, "adjusted": 0, "relabelled": 0, "deleted": 1, "missed": 0}
    assert out["model_version"] == "gemini-ls-b"  # our newest
    svc.handle(body("ANNOTATION_CREATED", 1, [rect(10, 10, 20, 20, "Red", "a")]))  # replay
    svc.handle(body("ANNOTATION_UPDATED", 1, [rect(12, 10, 20, 20, "Red", "a"), rect(60, 60, 9, 9, "Red", "b")]))
    t = ledger.totals(9, "gemini-ls-b")
    assert (t.annotations, t.labels["Red"].accepted, t.labels["Red"].adjusted, t.labels["Red"].deleted) == (1, 1, 1, 0)
    # parent_prediction picks the older one of ours
    svc.handle(body("ANNOTATION_CREATED", 2, [], parent_prediction=1))
    assert ledger.totals(9, "gemini-ls-a").labels["Red"].deleted == 1
    assert svc.handle({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 1}, {"id": 2}, {"id": 99}]}) == {"removed": 2}
    assert ledger.totals(9, "gemini-ls-b").annotations == 0 and ledger.totals(9, "gemini-ls-a").annotations == 0


def test_bulk_cancelled_foreign_unreadable_and_payloadless():
    ledger = MemoryLedger()
    metrics = Metrics()
    svc = ReviewService(ledger, TableReader({5: [OURS_NEW], 6: [THEIRS]}), metrics)
    bulk = {"action": "ANNOTATIONS_CREATED", "annotation": [{"id": 1, "task": 5, "project": 9, "result": []},
                                                             {"id": 2, "task": 6, "project": 9, "result": []}]}
    out = svc.handle(bulk)
    assert [a["verdict"] is None for a in out["annotations"]] == [False, True]  # task 6 holds no prediction of ours
    svc.handle(body("ANNOTATION_UPDATED", 1, [], was_cancelled=True))  # skipped: its contribution goes
    assert ledger.contributions(9) == []
    out = svc.handle(body("ANNOTATION_CREATED", 3, [], task=7))
    assert out["verdict"] is None and "404" in out["error"]
    assert metrics.registry.get_sample_value("gemini_ls_review_errors_total", {"reason": "label_studio"}) == 1
    out = svc.handle({"action": "ANNOTATION_CREATED", "annotation": {"id": 4, "task": 5}})  # a webhook without payload
    assert out["verdict"]["accepted"] == 1
    assert svc.handle({"action": "PROJECT_UPDATED"}) == {}


def test_redis_away_is_counted_not_a_crash():
    metrics = Metrics()
    svc = ReviewService(RedisLedger.from_url("redis://127.0.0.1:1/0", "x:"), TableReader({5: [OURS_NEW]}), metrics)
    out = svc.handle(body("ANNOTATION_CREATED", 1, []))
    assert out["error"] == "review ledger unavailable"
    assert metrics.registry.get_sample_value("gemini_ls_review_errors_total", {"reason": "ledger"}) == 1


def test_our_prediction():
    assert our_prediction([THEIRS]) is None
    assert our_prediction([OURS_NEW, OURS_OLD], parent=1) is OURS_OLD
    assert our_prediction([OURS_OLD, OURS_NEW], parent=3) is OURS_NEW
