"""The tokens one piece of work spent, per model: a tally a caller opens around its Gemini calls.

A job chunk (jobs/work.py) opens `recording()` around `runner.run`; every generateContent answer
counted by gemini/request.py adds its usage to the tally of the context it runs in. BatchRunner
runs tasks on its own pool, so it submits them with a copy of the caller's context (contextvars):
two chunks running side by side in one process each see only their own calls.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .pricing import Tokens


class UsageTally:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_model: dict[str, Tokens] = {}

    def add(self, model: str, prompt: int, output: int, thoughts: int, cached: int = 0) -> None:
        with self._lock:
            self._by_model[model] = self._by_model.get(model, Tokens()) + Tokens(prompt, output, thoughts, 1, cached)

    def snapshot(self) -> dict[str, Tokens]:
        with self._lock:
            return dict(self._by_model)


_current: contextvars.ContextVar[UsageTally | None] = contextvars.ContextVar("gemini_ls_usage", default=None)


@contextmanager
def recording() -> Iterator[UsageTally]:
    """A fresh tally for the calls made in this context (and the contexts copied from it) until exit."""
    tally = UsageTally()
    token = _current.set(tally)
    try:
        yield tally
    finally:
        _current.reset(token)


def record(model: str, prompt: int, output: int, thoughts: int, cached: int = 0) -> None:
    """Called once per answered generateContent request; nothing when no tally is open. `cached`: of
    `prompt`, the tokens served from a context cache (billed at the cached rate, pricing.py)."""
    tally = _current.get()
    if tally is not None:
        tally.add(model, prompt, output, thoughts, cached)
