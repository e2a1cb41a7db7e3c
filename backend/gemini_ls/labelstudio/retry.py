"""The one retry policy of every write to Label Studio (background jobs, one-click write-back,
Batch API jobs): `WRITE_ATTEMPTS` attempts per chunk with full-jitter exponential backoff.

`WRITE_ATTEMPTS` is the default of WRITEBACK_ATTEMPTS (settings.py). Only 5xx, 408, 429, timeouts
and connection errors are retried (`is_transient`); the writer (predictions.py) checks which tasks
already hold the version before every retry, so a retry never writes a prediction twice.
"""

from __future__ import annotations

import random
from collections.abc import Callable

WRITE_ATTEMPTS = 6  # attempts per chunk of predictions (WRITEBACK_ATTEMPTS)
BACKOFF_BASE = 0.5  # seconds before the first retry, at most (full jitter)
BACKOFF_CAP = 20.0  # seconds at most between two attempts


def backoff(attempt: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP,
            rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry `attempt + 1` (attempt counts from 0): full jitter."""
    return max(0.0, min(1.0, rand())) * min(cap, base * 2.0**attempt)


def is_transient(status: int) -> bool:
    """HTTP statuses worth another attempt: Label Studio busy or down, not a refusal."""
    return status >= 500 or status in (408, 429)
