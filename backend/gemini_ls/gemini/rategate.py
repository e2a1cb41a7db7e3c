"""The 429 cool-down shared by every Gemini caller of a process (a circuit breaker, see RateGate)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from .errors import GeminiError


class RateGate:
    """The 429 cool-down shared by every caller of the process: a circuit breaker.

    * closed: calls go;
    * open, after a 429: nobody calls until the cool-down ends. The cool-down is what Gemini asked
      for (RetryInfo), capped at `max_cooldown` (GEMINI_MAX_COOLDOWN): a daily quota answers with a
      retryDelay of hours, and one such answer must not stop every prediction until a restart;
    * half-open, when the cool-down is over: ONE caller goes through as a probe, the others wait
      for its answer. A success closes the gate, a 429 opens it again (capped again). A probe that
      fails otherwise or never reports (its deadline, its thread) hands the probe to the next
      caller: at once, or after `probe_lease` seconds at the latest.
    """

    def __init__(
        self,
        *,
        max_cooldown: float = 60.0,
        probe_lease: float = 60.0,
        poll: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._clock = clock
        self._sleep = sleep
        self._max_cooldown = max_cooldown
        self._probe_lease = probe_lease
        self._poll = poll
        self._lock = threading.Lock()
        self._until = 0.0
        self._half_open = False  # a 429 was seen and no probe has succeeded since
        self._probe_since: float | None = None  # when the probe in flight started

    @property
    def until(self) -> float:
        with self._lock:
            return self._until

    def cool_down(self, seconds: float, model: str | None = None) -> float:
        """Nobody calls before now + min(seconds, max_cooldown) (an earlier, longer cool-down is
        kept); returns the capped wait. Ends the probe in flight: it just got its answer. This
        process's gate is one circuit for all models (`model` is for the shared quota's per-model
        keys, gemini/quota.py)."""
        capped = min(max(0.0, seconds), self._max_cooldown)
        with self._lock:
            self._until = max(self._until, self._clock() + capped)
            self._half_open = True
            self._probe_since = None
        return capped

    def wait(self, deadline: float, model: str | None = None) -> bool:
        """Return when this caller may call Gemini (`model`): True when it is the half-open probe (it
        must then call `probe_done`). Raises GeminiError when that would be after `deadline`."""
        while True:
            with self._lock:
                now = self._clock()
                until = self._until
                if until <= now:
                    if not self._half_open:
                        return False
                    if self._probe_since is None or now - self._probe_since > self._probe_lease:
                        self._probe_since = now
                        return True
                    pause = self._poll  # a probe is in flight: its answer decides
                else:
                    pause = until - now
            if now + pause > deadline:
                raise GeminiError(
                    f"Gemini's rate limit is cooling down for {max(0.0, until - now):.1f} s more "
                    f"(until {_wall_time(until - now)}), longer than this request may wait"
                    if until > now
                    else "Gemini's rate limit is being probed by another request; this one may not wait for the answer",
                    status=429,
                    retryable=True,
                    reason="rate_limited",
                )
            self._sleep(pause)

    def probe_done(self, ok: bool) -> None:
        """The probe's answer when it was not a 429 (cool_down handles that): a success closes the
        gate; anything else lets the next caller probe."""
        with self._lock:
            if ok:
                self._half_open = False
            self._probe_since = None

    def status(self) -> dict[str, Any] | None:
        """For /health: None when closed, else the state and until when Gemini is cooling down."""
        with self._lock:
            until, half_open, probing = self._until, self._half_open, self._probe_since is not None
        left = until - self._clock()
        if left > 0:
            return {"state": "open", "until": _wall_time(left), "seconds_left": round(left, 1)}
        if half_open:
            return {"state": "half_open", "probe_in_flight": probing}
        return None


def _wall_time(seconds_from_now: float) -> str:
    """An ISO-8601 UTC time `seconds_from_now` ahead (the gate runs on the monotonic clock)."""
    moment = datetime.fromtimestamp(time.time() + seconds_from_now, tz=timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
