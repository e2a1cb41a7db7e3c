"""Three `gemini-ls worker` processes under one shared GEMINI_RPM (the limiter's window shortened to
20 s for the test): the emulator never sees more than the limit in any window, and while work is
queued the limit is at least 90% used."""

from __future__ import annotations

import bisect

import pytest

from .jobs_helpers import gemini_ls, url_project
from .test_jobs_prelabel import job_env, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RPM = 60
WINDOW = 20.0
N_TASKS = 200  # a little over 3 windows of work at the limit


def test_three_workers_share_one_rpm_limit(label_studio, emulator_factory, cors_images, redis_url, redis_prefix):
    ls = label_studio
    emu = emulator_factory(latency=0.2)
    pid, _ = url_project(ls, cors_images, None, "e2e limiter", N_TASKS)
    env = job_env(emu, ls, redis_url, redis_prefix, GEMINI_RPM=str(RPM), GEMINI_RATE_WINDOW=str(WINDOW), JOB_TIMEOUT="600")
    workers = [gemini_ls(f"limited-worker-{i}", ["worker"], env) for i in range(3)]
    try:
        out = run_cli(["prelabel", "--project", str(pid), "--quiet"], env, timeout=400)
        assert out.returncode == 0, out.stderr
    finally:
        for w in workers:
            w.stop()
    arrivals = sorted(emu.counters()["arrivals"]["generateContent"])
    assert len(arrivals) == N_TASKS
    # never more than RPM in any window of WINDOW seconds (every window starting at an arrival)
    worst = max(bisect.bisect_left(arrivals, t + WINDOW) - i for i, t in enumerate(arrivals))
    assert worst <= RPM, f"{worst} requests in one {WINDOW:g} s window (limit {RPM})"
    # while work was queued (up to the last window that saw the limit reached), consecutive full
    # windows carried at least 90% of the limit on average
    start = arrivals[0]
    full = int((arrivals[-1] - start) // WINDOW)
    counts = [bisect.bisect_left(arrivals, start + (k + 1) * WINDOW) - bisect.bisect_left(arrivals, start + k * WINDOW)
              for k in range(full)]
    assert full >= 2, counts
    used = sum(counts) / (RPM * len(counts))
    print(f"{len(arrivals)} calls; busiest {WINDOW:g} s window {worst}/{RPM}; full windows {counts}: {used:.1%} of the limit")
    assert used >= 0.9, counts
