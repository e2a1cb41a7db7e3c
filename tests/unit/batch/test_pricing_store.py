"""Price table and the job store (the Redis one against a real redis-server, the in-process one alike)."""

from __future__ import annotations

import pytest

from gemini_ls.batch.store import BatchRecord, MemoryJobStore, RedisJobStore, job_id, parse_job_id
from gemini_ls.gemini.pricing import Tokens, cost_by_model, cost_of, parse_prices, price_for
from gemini_ls.settings import Settings, SettingsError


def test_prices_match_the_longest_prefix_and_overrides_win():
    assert price_for("models/gemini-2.5-flash-lite-preview-09-2025") == (0.10, 0.40)
    assert price_for("gemini-2.5-flash") == (0.30, 2.50)
    assert price_for("gemini-2.5-flash", {"gemini-2.5-flash": (1.0, 2.0)}) == (1.0, 2.0)
    assert price_for("some-other-model") is None


def test_cost_at_sync_and_batch_rates():
    cost = cost_of("gemini-2.5-flash", Tokens(prompt=1_000_000, output=100_000, thoughts=100_000, requests=10))
    assert cost.sync_usd == pytest.approx(0.30 + 0.2 * 2.50)
    assert cost.batch_usd == pytest.approx(cost.sync_usd / 2)
    assert cost.per_thousand(500) == pytest.approx((cost.sync_usd * 2, cost.batch_usd * 2))
    assert "at the batch rate" in cost.describe()
    unknown = cost_of("mystery", Tokens(prompt=5))
    assert unknown.sync_usd is None and "set GEMINI_PRICES" in unknown.describe()


def test_a_jobs_cost_sums_its_models_and_is_unknown_when_one_price_is():
    usage = {"gemini-2.5-flash-lite": Tokens(prompt=1_000_000, requests=1), "gemini-3.6-flash": Tokens(output=1_000_000, requests=1)}
    cost = cost_by_model(usage)
    assert cost.sync_usd == pytest.approx(0.10 + 7.50) and cost.batch_usd == pytest.approx((0.10 + 7.50) / 2)
    assert cost.tokens == Tokens(prompt=1_000_000, output=1_000_000, requests=2)
    assert cost.model == "gemini-2.5-flash-lite + gemini-3.6-flash"
    partial = cost_by_model({**usage, "mystery": Tokens(prompt=1)})
    assert partial.sync_usd is None and "set GEMINI_PRICES" in partial.describe()
    assert cost_by_model({}).sync_usd == 0.0


def test_price_overrides_from_env():
    settings = Settings.from_env({"GEMINI_PRICES": "gemini-2.5-flash=1:2, mine=0.5:0.75"})
    assert settings.prices == (("gemini-2.5-flash", 1.0, 2.0), ("mine", 0.5, 0.75))
    assert parse_prices("") == {}
    with pytest.raises(SettingsError, match="GEMINI_PRICES: 'oops' is not MODEL=INPUT:OUTPUT"):
        Settings.from_env({"GEMINI_PRICES": "oops"})
    with pytest.raises(SettingsError):
        Settings.from_env({"GEMINI_PRICES": "m=1:x"})


def test_job_ids_round_trip():
    assert parse_job_id(job_id(12, "gemini-ls-x-v3-abc")) == ("12", "gemini-ls-x-v3-abc")
    assert parse_job_id("batches/xyz") is None and parse_job_id("batch::v") is None


@pytest.fixture(params=["redis", "memory"])
def store(request, redis_url, redis_prefix):
    if request.param == "redis":
        return RedisJobStore(redis_url, redis_prefix, 3, "v1")
    return MemoryJobStore(3, "v1")


def test_store_keeps_what_a_restart_needs(store, redis_url, redis_prefix):
    assert store.job == "batch:3:v1" and store.batches() == [] and not store.cancelled()
    store.set_submitting("gemini-ls batch:3:v1 #1")
    assert store.submitting() == "gemini-ls batch:3:v1 #1"
    store.put_batch(BatchRecord("batches/a", "SUBMITTED", "gemini-ls batch:3:v1 #1", 4, "file", "gemini-3.6-flash"))
    store.set_submitting(None)
    assert store.submitting() is None
    assert [(b.active, b.model) for b in store.batches()] == [(True, "gemini-3.6-flash")]
    store.put_batch(BatchRecord("batches/a", "SUCCEEDED", "gemini-ls batch:3:v1 #1", 4, "file"))
    assert [b.active for b in store.batches()] == [False]
    store.put_meta(7, {"image": (640, 480)})
    assert store.meta(7) == {"image": (640, 480)} and store.meta(8) is None
    store.add_written([7, 9])
    store.add_written([])
    assert store.written() == {"7", "9"}
    store.add_failed(11, "image_not_found: gone")
    store.add_failed(12, "batch_error: code 13")
    store.clear_failed([12])
    assert store.failed() == {"11": "image_not_found: gone"}
    store.add_usage("gemini-3.6-flash", Tokens(10, 5, 1, 2))
    store.add_usage("gemini-3.6-flash", Tokens(1, 1, 0, 1))
    store.add_usage("gemini-2.5-flash-lite", Tokens(4, 2, 0, 1))
    assert store.usage() == {"gemini-2.5-flash-lite": Tokens(4, 2, 0, 1), "gemini-3.6-flash": Tokens(11, 6, 1, 3)}
    store.put_parts(7, {1: [{"type": "choices"}]})
    store.put_parts(7, {2: []})
    assert store.parts(7) == {1: [{"type": "choices"}], 2: []} and store.parts(8) == {}
    assert store.parts_of([7, 8]) == {"7": {1, 2}}
    store.drop_parts(7, [1])
    assert store.parts(7) == {2: []}
    store.drop_parts(7, [2])
    assert store.parts(7) == {} and store.parts_of([7]) == {}
    store.cancel()
    assert store.cancelled()
    store.cancel(False)
    assert not store.cancelled()
    store.cancel()
    if store.durable:  # a new process sees all of it
        again = RedisJobStore(redis_url, redis_prefix, 3, "v1")
        assert again.written() == {"7", "9"} and again.usage()["gemini-3.6-flash"] == Tokens(11, 6, 1, 3) and again.cancelled()
        assert "batch:3:v1" in RedisJobStore.jobs(redis_url, redis_prefix)
