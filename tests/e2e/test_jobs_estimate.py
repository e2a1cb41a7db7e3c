"""`gemini-ls prelabel --estimate` and `--max-cost` on the real Label Studio, Redis and a worker,
against the emulator over real HTTP: the estimate makes countTokens calls only (no generateContent,
no job, nothing written); a cap stops the job part way, the same command with a higher cap
finishes it, and every task ends with exactly one prediction, each predicted once."""

from __future__ import annotations

import json

import pytest

from .jobs_helpers import exactly_one_each, gemini_ls, predictions_per_task, url_project, version_counts
from .test_jobs_prelabel import job_env, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _estimate(env, pid: int, *extra: str) -> dict:
    out = run_cli(["prelabel", "--project", str(pid), "--estimate", "--json", *extra], env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_estimate_counts_tokens_and_generates_nothing(label_studio, emulator_factory, cors_images, redis_url, redis_prefix):
    ls = label_studio
    emu = emulator_factory()
    pid, _ids = url_project(ls, cors_images, None, "e2e estimate", 45)
    env = job_env(emu, ls, redis_url, redis_prefix)
    est = _estimate(env, pid)
    calls = emu.counters()["requests"]
    assert calls.get("generateContent", 0) == 0 and calls.get("streamGenerateContent", 0) == 0, calls
    assert calls.get("countTokens", 0) == 20, calls  # one rectangles request for each of the 20 sampled tasks
    assert (est["tasks"], est["sampled"], est["requests"]) == (45, 20, 45), est
    assert est["input_tokens"] > 45 * 258 and est["output_tokens"] > 0 and est["output_source"] == "prior", est
    assert est["batch_usd"] == pytest.approx(est["sync_usd"] / 2) and est["sync_usd"] > 0
    batch = _estimate(env, pid, "--batch")  # the same requests at the Batch API's price
    assert batch == est
    assert emu.counters()["requests"].get("generateContent", 0) == 0
    assert not {v: n for v, n in version_counts(ls, pid).items() if n}  # nothing written, no job made


def test_max_cost_stops_part_way_and_a_higher_cap_finishes(label_studio, emulator_factory, cors_images, redis_url,
                                                            redis_prefix):
    ls = label_studio
    emu = emulator_factory()
    pid, ids = url_project(ls, cors_images, None, "e2e max cost", 40)
    env = job_env(emu, ls, redis_url, redis_prefix, JOB_CHUNK="5", JOB_RETRIES="0")
    est = _estimate(env, pid)
    worker = gemini_ls("worker-maxcost", ["worker"], env)
    try:
        cap = est["sync_usd"] * 0.4
        first = run_cli(["prelabel", "--project", str(pid), "--quiet", "--max-cost", f"{cap:.8f}"], env)
        assert first.returncode == 1, first.stderr
        assert "stopped: max cost" in first.stderr and "higher --max-cost" in first.stderr, first.stderr
        (version,) = [v for v, n in version_counts(ls, pid).items() if n]
        counts = predictions_per_task(ls, pid, version)
        written = sorted(t for t, n in counts.items() if n)
        assert 5 <= len(written) < 40 and set(counts.values()) <= {0, 1}, counts
        calls = emu.counters()["requests"].get("generateContent", 0)
        assert calls == len(written)  # no chunk started past the cap: nothing predicted and dropped

        again = run_cli(["prelabel", "--project", str(pid), "--quiet", "--max-cost", f"{est['sync_usd'] * 3:.8f}"], env)
        assert again.returncode == 0, again.stderr
        assert f"{40 - len(written)} tasks to predict" in again.stderr and f"{len(written)} already hold it" in again.stderr
        exactly_one_each(ls, pid, ids)
        assert emu.counters()["requests"].get("generateContent", 0) == 40  # each task predicted exactly once
        print(f"cap ${cap:.6f} of estimated ${est['sync_usd']:.6f}: stopped after {len(written)}/40 tasks")
    finally:
        worker.stop()
