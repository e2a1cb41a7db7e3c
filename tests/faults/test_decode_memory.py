"""A few hundred KB of PNG must not take gigabytes (issue 11, case 5).

Eight tasks of one /predict point at a ~300 KB PNG of 10,000 x 10,000 pixels (exactly
IMAGE_MAX_PIXELS: the bomb guard lets it through). Before the fix the worker went from ~120 MB to
3.7 GB. The real server runs as a subprocess (gunicorn, the default WORKERS=1 x THREADS=8,
GEMINI_CONCURRENCY=8) and its peak RSS is read from outside, from the kernel (VmHWM). The table
for the README comes from tests/benchmarks/bench_decode_memory.py, which this test shares.
"""

from __future__ import annotations

from tests.benchmarks.bench_decode_memory import measure

GB_KB = 1024 * 1024


def test_eight_tasks_on_a_100_megapixel_png_stay_under_1_gb(emu):
    result = measure(emu.url, tasks=8)
    assert result.answered == 8, result  # every task is predicted: the budget makes them queue, not fail
    assert result.peak_kb < GB_KB, f"peak RSS {result.peak_kb / 1024:.0f} MB (before: {result.before_kb / 1024:.0f} MB)"
    assert result.time_max_kb < GB_KB, result  # /usr/bin/time -v agrees
