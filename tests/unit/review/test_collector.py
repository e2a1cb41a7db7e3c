"""The ledger on /metrics: read at scrape time, bounded label cardinality."""

from __future__ import annotations

from prometheus_client import generate_latest

from gemini_ls.review.collector import MAX_LABELS, MAX_VERSIONS, review_registry
from gemini_ls.review.ledger import MemoryLedger, contribution
from gemini_ls.review.match import match_regions
from tests.e2e.helpers import parse_prometheus
from tests.unit.review.test_match import rect


def test_bounded_cardinality_and_other_bucket():
    ledger = MemoryLedger()
    labels = [f"L{i:02d}" for i in range(MAX_LABELS + 10)]
    pred = [rect(i, i, 5, 5, label, f"id{i}") for i, label in enumerate(labels)]
    for v in range(MAX_VERSIONS + 2):
        ledger.replace(v, contribution(v, 4, v, f"gemini-ls-v{v}", match_regions(pred, pred)))
    samples = parse_prometheus(generate_latest(review_registry(ledger)).decode())
    accepted = {}
    for (name, lab), v in samples.items():
        d = dict(lab)
        if name == "gemini_ls_review_regions" and d["outcome"] == "accepted" and d["model_version"] == "gemini-ls-v4":
            accepted[d["label"]] = v
    assert len(accepted) == MAX_LABELS + 1 and accepted["other"] == 10 and sum(accepted.values()) == len(labels)
    versions = {dict(k[1])["model_version"] for k in samples if k[0] == "gemini_ls_review_annotations"}
    assert versions == {"gemini-ls-v4", "gemini-ls-v3", "gemini-ls-v2"}  # the newest three


def test_a_broken_ledger_leaves_metrics_answering():
    class Broken(MemoryLedger):
        def projects(self):
            raise ConnectionError("redis away")

    text = generate_latest(review_registry(Broken())).decode()
    assert "gemini_ls_review_regions" in text
