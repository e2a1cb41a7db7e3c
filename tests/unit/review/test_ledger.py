"""The ledger: idempotent per annotation, in memory and on a real Redis (same tests for both)."""

from __future__ import annotations

import threading

import pytest

from gemini_ls.review.ledger import Contribution, MemoryLedger, RedisLedger, contribution
from gemini_ls.review.match import match_regions
from tests.unit.review.test_match import rect


@pytest.fixture(params=["memory", "redis"])
def ledger(request):
    if request.param == "memory":
        return MemoryLedger()
    return RedisLedger.from_url(request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"))


PRED = [rect(10, 10, 20, 20, "Cat", "a", 0.9), rect(50, 50, 20, 20, "Dog", "b", 0.8), rect(80, 5, 10, 10, "Cat", "c", 0.4)]


def contrib(aid, ann, version="gemini-ls-v1", project=7, task=1):
    return contribution(aid, project, task, version, match_regions(PRED, ann))


def test_replace_is_idempotent_and_deletion_removes(ledger):
    first = contrib(1, [PRED[0], PRED[1]])  # accepted, accepted, deleted
    assert ledger.replace(1, first) is None
    ledger.replace(1, first)  # the same webhook delivered again
    t = ledger.totals(7, "gemini-ls-v1")
    assert t.annotations == 1
    assert (t.labels["Cat"].accepted, t.labels["Cat"].deleted, t.labels["Dog"].accepted) == (1, 1, 1)
    # an update replaces the earlier contribution
    moved = {**PRED[1], "value": {**PRED[1]["value"], "x": 52}}
    ledger.replace(1, contrib(1, [PRED[0], moved, PRED[2]]))
    t = ledger.totals(7, "gemini-ls-v1")
    assert (t.labels["Cat"].accepted, t.labels["Cat"].deleted, t.labels["Dog"].accepted, t.labels["Dog"].adjusted) == (2, 0, 0, 1)
    assert t.annotations == 1
    ledger.replace(2, contrib(2, [], task=2))
    assert ledger.totals(7, "gemini-ls-v1").labels["Cat"].deleted == 2
    # deleted annotations take their contribution away
    assert isinstance(ledger.replace(1, None), Contribution)
    assert ledger.replace(1, None) is None  # deleting twice removes nothing more
    t = ledger.totals(7, "gemini-ls-v1")
    assert t.annotations == 1 and t.labels["Cat"].deleted == 2 and "Dog" in t.labels and t.labels["Dog"].adjusted == 0
    assert [c.annotation_id for c in ledger.contributions(7)] == [2]
    assert ledger.projects() == [7]
    assert ledger.versions(7) == ["gemini-ls-v1"]
    assert ledger.revision(7) >= 5


def test_concurrent_deliveries_count_once(ledger):
    c = contrib(5, [PRED[0]])
    threads = [threading.Thread(target=ledger.replace, args=(5, c)) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t = ledger.totals(7, "gemini-ls-v1")
    assert t.annotations == 1 and t.labels["Cat"].accepted == 1 and t.labels["Cat"].deleted == 1


def test_versions_are_kept_apart(ledger):
    ledger.replace(1, contrib(1, [PRED[0]], version="gemini-ls-v1"))
    ledger.replace(2, contrib(2, [PRED[0]], version="gemini-ls-v2", task=2))
    assert set(ledger.versions(7)) == {"gemini-ls-v1", "gemini-ls-v2"}
    assert ledger.totals(7, "gemini-ls-v2").annotations == 1
    # an annotation re-matched against a newer prediction moves from one version to the other
    ledger.replace(1, contrib(1, [PRED[0]], version="gemini-ls-v2"))
    assert ledger.totals(7, "gemini-ls-v1").annotations == 0
    assert ledger.totals(7, "gemini-ls-v2").annotations == 2


def test_contribution_round_trips():
    c = contrib(3, [PRED[0], {**PRED[1], "value": {**PRED[1]["value"], "rectanglelabels": ["Cat"]}}])
    back = Contribution.from_json(c.to_json())
    assert back == c
