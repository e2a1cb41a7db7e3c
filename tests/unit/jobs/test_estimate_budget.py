"""--estimate's arithmetic (jobs/estimate.py) and --max-cost's budget (jobs/budget.py), pure."""

from __future__ import annotations

import pytest

from gemini_ls.gemini.pricing import Tokens
from gemini_ls.gemini.usage import UsageTally, record, recording
from gemini_ls.jobs.budget import BudgetState, MemoryBudget, chunk_cost, refusal, usage_fields
from gemini_ls.jobs.estimate import (
    PRIOR_OUTPUT_PER_REQUEST,
    CountedRequest,
    OutputRates,
    estimate,
    rates_from_history,
    sample_indices,
)
from gemini_ls.jobs.state import decode_usage

FLASH = "gemini-2.5-flash"  # $0.30 in, $2.50 out per 1M


def test_sample_is_spread_deterministic_and_at_most_20():
    assert sample_indices(5) == [0, 1, 2, 3, 4]
    picked = sample_indices(1000)
    assert len(picked) == 20 and picked[0] == 0 and picked[-1] == 999
    assert picked == sample_indices(1000)
    gaps = {b - a for a, b in zip(picked, picked[1:])}
    assert max(gaps) - min(gaps) <= 1  # evenly spread, not the first 20
    assert sample_indices(0) == []


def test_estimate_scales_sample_to_task_count_and_prices_both_rates():
    sample = [[CountedRequest("boxes", FLASH, 1000)], [CountedRequest("boxes", FLASH, 1200)], []]  # the [] failed to fetch
    est = estimate(sample, 100, OutputRates(per_request=200.0, history_requests=50))
    assert (est.sampled, est.requests, est.input_tokens, est.output_tokens) == (2, 100, 110_000, 20_000)
    assert est.sync_usd == pytest.approx((110_000 * 0.30 + 20_000 * 2.50) / 1e6)
    assert est.batch_usd == pytest.approx(est.sync_usd / 2)
    assert est.per_task_sync_usd == pytest.approx(est.sync_usd / 100)
    assert "history (50 requests)" in est.describe() and "with --batch" in est.describe()


def test_estimate_uses_per_kind_prior_without_history_and_sums_models():
    sample = [[CountedRequest("masks", "gemini-2.5-pro", 500), CountedRequest("choice", FLASH, 300)]] * 4
    est = estimate(sample, 8, rates_from_history([]))
    assert est.output_source == "prior"
    assert est.by_model["gemini-2.5-pro"] == Tokens(prompt=4000, output=8 * PRIOR_OUTPUT_PER_REQUEST["masks"], requests=8)
    assert est.by_model[FLASH].output == 8 * PRIOR_OUTPUT_PER_REQUEST["choice"]
    assert est.requests == 16


def test_estimate_without_price_says_so():
    est = estimate([[CountedRequest("boxes", "mystery-model", 10)]], 3, OutputRates())
    assert est.sync_usd is None and "GEMINI_PRICES" in est.describe()


def test_history_counts_output_and_thoughts_per_request():
    rates = rates_from_history([{FLASH: Tokens(prompt=9, output=300, thoughts=100, requests=4)},
                                {"other": Tokens(output=100, requests=1)}])
    assert rates.per_request == pytest.approx(100.0) and rates.history_requests == 5
    assert rates.for_kind("masks") == pytest.approx(100.0)


def test_chunk_cost_follows_measured_cost_once_known():
    fresh = BudgetState(cap=1.0, per_task=0.01, reserved=0, spent=0, settled_tasks=0, stopped="")
    assert chunk_cost(fresh, 10) == pytest.approx(0.1)
    measured = BudgetState(cap=1.0, per_task=0.01, reserved=0, spent=0.2, settled_tasks=10, stopped="")
    assert chunk_cost(measured, 10) == pytest.approx(0.2)


def test_refusal_before_the_chunk_that_would_pass_the_cap():
    s = BudgetState(cap=1.0, per_task=0.1, reserved=0.3, spent=0.5, settled_tasks=5, stopped="")
    assert refusal(s, 0.2) is None  # 0.5 + 0.3 + 0.2 == cap: allowed
    why = refusal(s, 0.21)
    assert why is not None and "--max-cost" in why and "higher" in why
    assert refusal(BudgetState(None, 0.1, 0, 99.0, 1, ""), 5.0) is None  # no cap
    assert refusal(BudgetState(None, 0.1, 0, 0, 0, "max cost: earlier"), 0.0) == "max cost: earlier"


def test_memory_budget_reserves_settles_and_stops_for_good():
    b = MemoryBudget()
    b.set_cap("j", 0.25, per_task=0.01)
    cost, why = b.reserve("j", 10)
    assert why is None and cost == pytest.approx(0.1)
    cost2, _ = b.reserve("j", 10)  # two chunks running: both reserved
    assert b.state("j").reserved == pytest.approx(0.2)
    # the first one's measure replaces its reservation: 10 tasks billed 300k input tokens = $0.09
    b.settle("j", cost, {FLASH: Tokens(prompt=300_000, requests=10)}, 10)
    st = b.state("j")
    assert st.reserved == pytest.approx(0.1) and st.spent == pytest.approx(0.09) and st.settled_tasks == 10
    _, why = b.reserve("j", 10)  # measured 0.009/task: 0.09 + 0.1 + 0.09 = 0.28 > 0.25
    assert why is not None and b.state("j").stopped == why
    b.settle("j", cost2, {}, 10)
    assert b.reserve("j", 1)[1] == why  # stopped stays stopped: the rerun is a new job
    assert b.usage("j") == {FLASH: Tokens(prompt=300_000, requests=10)}


def test_usage_fields_round_trip():
    usage = {FLASH: Tokens(1, 2, 3, 4), "models/x|y": Tokens(prompt=5)}
    assert decode_usage({k.encode(): str(v).encode() for k, v in usage_fields(usage).items()}) == usage


def test_usage_tally_sees_only_its_own_context():
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    record(FLASH, 1, 1, 1)  # no tally open: nothing, no error
    with ThreadPoolExecutor(2) as pool, recording() as tally:
        pool.submit(contextvars.copy_context().run, record, FLASH, 10, 2, 1).result()
        pool.submit(record, FLASH, 99, 99, 99).result()  # a thread without the context: not ours
    assert tally.snapshot() == {FLASH: Tokens(10, 2, 1, 1)}
    assert isinstance(tally, UsageTally)


def test_page_shows_a_job_stopped_by_its_cap_with_the_reason_and_spend():
    from gemini_ls.jobs.records import JobCounts
    from gemini_ls.settings import Settings
    from gemini_ls.web.data import job_view

    settings = Settings.from_env({})
    usage = {FLASH: Tokens(500_000, 40_000, 0, 10)}  # $0.15 + $0.10 at 2.5 Flash's price
    stopped = JobCounts("j", "prelabel", "1", "v", 10, 0.0, 4, {}, 0, usage=usage, stopped="max cost: cap")
    view = job_view(settings, stopped, now=1.0)
    assert view.state == "stopped" and view.cost_usd == pytest.approx(0.25) and "max cost: cap" in view.failed_by_reason
    assert view.tokens == 540_000 and view.models == (FLASH,)
    assert not view.can_cancel
    done = job_view(settings, JobCounts("j", "prelabel", "1", "v", 4, 0.0, 4, {}, 0, usage=usage, stopped="max cost: cap"),
                    now=1.0)
    assert done.state == "done"  # finished before the cap mattered


def test_cached_tokens_flow_through_the_tally_the_usage_hash_and_the_estimate_at_the_cached_rate():
    # a job's tally and its Redis usage hash keep the context cache's share (gemini/ctxcache.py)
    with recording() as tally:
        record("gemini-2.5-flash-lite", 5000, 80, 0, 3800)
    usage = tally.snapshot()
    assert usage["gemini-2.5-flash-lite"].cached == 3800
    assert decode_usage(usage_fields(usage))["gemini-2.5-flash-lite"] == usage["gemini-2.5-flash-lite"]
    # an estimate whose examples a job would cache bills them at a tenth of the input rate
    rates = OutputRates(per_request=0.0)
    inline = estimate([[CountedRequest("boxes", "gemini-2.5-flash-lite", 5000)]], 1000, rates)
    cached = estimate([[CountedRequest("boxes", "gemini-2.5-flash-lite", 5000, cached_tokens=3800)]], 1000, rates)
    assert inline.sync_usd == pytest.approx(5000 * 1000 * 0.10 / 1e6)
    assert cached.sync_usd == pytest.approx((1200 + 3800 * 0.10) * 1000 * 0.10 / 1e6)
    assert cached.by_model["gemini-2.5-flash-lite"].cached == 3_800_000
