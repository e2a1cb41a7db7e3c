"""jobs/remainders.py: a click's remainder as one job of this process's store, including what
happened to its tasks before the click knew which were late."""

from __future__ import annotations

from gemini_ls.jobs.memstore import MemoryJobStore
from gemini_ls.jobs.remainders import Remainders


def test_early_results_are_kept_until_the_job_exists_then_applied():
    store = MemoryJobStore()
    rem = Remainders(store)
    rem.begin("click-a")
    rem.record("click-a", 3, None)  # written before the click returned
    rem.record("click-a", 4, "write_back: 400")
    job = rem.open("click-a", 9, "gemini-ls-v1", [3, 4, 5], "<View/>")
    assert job is not None
    info = store.get(job)
    assert info is not None and (info.total, info.done, dict(info.failed), info.handed_by) == (3, {3}, {4: "write_back: 400"}, "click-a")
    assert info.state == "running" and store.config(job) == "<View/>"
    rem.record("click-a", 5, None)
    info = store.get(job)
    assert info is not None and info.state == "failed" and info.done == {3, 5}
    rem.record("click-a", 6, None)  # the job ended: a stray result changes nothing
    assert store.get(job) == info


def test_a_click_with_nothing_late_makes_no_job_and_other_clicks_are_apart():
    store = MemoryJobStore()
    rem = Remainders(store)
    rem.begin("a")
    rem.begin("b")
    assert rem.open("a", 9, "v", []) is None and store.recent() == []
    rem.record("a", 1, None)  # no click "a" any more: ignored
    job = rem.open("b", 9, "v", [1])
    assert job is not None and [j.id for j in store.recent()] == [job]
    assert (info := store.get(job)) is not None and info.done == frozenset()
