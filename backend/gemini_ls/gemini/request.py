"""One Gemini generateContent call, with our own retry policy bounded by a deadline.

Retry policy (the SDK's own retries are off, see client.py):

* 429 RESOURCE_EXHAUSTED: wait RetryInfo.retryDelay ("7s", "1.5s") from the error details, or
  the backoff below when Gemini names none, capped at GEMINI_MAX_COOLDOWN. The wait goes through
  a shared `RateGate`, so every task of the batch/process pauses until the cooldown ends instead
  of each one hitting the quota wall on its own; then one probe request finds out whether the
  quota is back before the others follow (a half-open circuit).
* 500/502/503/504, 408, connection errors, timeouts and a garbled 200 body: exponential backoff
  with full jitter, uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**retry)).
* any other 4xx: raised at once (a FileRejected for file references, see errors.py).
* at most settings.max_retries retries, and never a sleep past the deadline: when the next wait
  would end after it, we give up at once with a GeminiError that says so.
* every attempt's HTTP timeout is min(settings.request_timeout, time left before the deadline).

A safety block is not an error: `generate` returns a Reply with `block_reason` set (and no
text). It is Gemini's answer about this image, retrying cannot change it, and the caller can
tell the Label Studio user why there are no regions. Likewise an answer cut off by MAX_TOKENS
(or with no text because thinking used the budget) is returned with its finish_reason for the
parser to salvage what is there.

The request and the Reply are built and read in wire.py; the shared 429 gate is rategate.py.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from ..detections import RequestKind
from ..metrics import Metrics
from ..settings import Settings
from .daily import DailyUsage
from .errors import GeminiError, from_api_error, redact
from .prompts import Prompt
from .rategate import RateGate
from .usage import record as record_usage
from .wire import Reply, build_request, reply_from

log = logging.getLogger(__name__)

BACKOFF_BASE = 1.0  # seconds, first retry waits up to this
BACKOFF_CAP = 30.0
MIN_ATTEMPT_SECONDS = 0.5  # not worth starting a call with less time than this left


def _transport_errors() -> tuple[type[BaseException], ...]:
    """httpx and httpx2 transport errors (connect, read, timeout, dropped connection)."""
    found: list[type[BaseException]] = []
    for name in ("httpx", "httpx2"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        for attr in ("TransportError", "TimeoutException"):
            cls = getattr(module, attr, None)
            if isinstance(cls, type):
                found.append(cls)
    return tuple(found)


TRANSPORT_ERRORS = _transport_errors()


# --------------------------------------------------------------------------- pure helpers

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*s?\s*$")


def parse_duration(value: Any) -> float | None:
    """Protobuf Duration as JSON ("7s", "1.5s", "53.0s") or a number -> seconds; None if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if isinstance(value, dict):  # {"seconds": 7, "nanos": 500000000}
        seconds = value.get("seconds", 0)
        nanos = value.get("nanos", 0)
        try:
            total = float(seconds) + float(nanos) / 1e9
        except (TypeError, ValueError):
            return None
        return total if total >= 0 else None
    if isinstance(value, str):
        match = _DURATION.match(value)
        return float(match.group(1)) if match else None
    return None


def retry_delay_from(details: Any) -> float | None:
    """RetryInfo.retryDelay from an error body ({"error": {"details": [...]}}), in seconds."""
    if not isinstance(details, dict):
        return None
    error = details.get("error", details)
    entries = error.get("details") if isinstance(error, dict) else None
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if isinstance(entry, dict) and str(entry.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = parse_duration(entry.get("retryDelay", entry.get("retry_delay")))
            if delay is not None:
                return delay
    return None


def backoff_delay(retry: int, rand: Callable[[], float], base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Full-jitter exponential backoff for the `retry`-th retry (0-based)."""
    ceiling = min(cap, base * (2.0 ** max(0, retry)))
    return max(0.0, min(1.0, rand())) * ceiling


# --------------------------------------------------------------------------- the caller


@dataclass(frozen=True)
class _Failure:
    error: GeminiError
    delay: float | None  # a server-requested wait (RetryInfo), else None: use backoff
    retry_reason: str
    cause: BaseException | None = None


class GeminiCaller:
    """Calls generateContent for one prompt and its images, retrying per the module's policy."""

    def __init__(
        self,
        client: genai.Client,
        settings: Settings,
        metrics: Metrics,
        gate: RateGate | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        usage: DailyUsage | None = None,
    ):
        self.client = client
        self.usage = usage  # today's tokens for the jobs page (gemini/usage.py), shared in Redis
        self.settings = settings
        self.metrics = metrics
        self.gate = gate if gate is not None else RateGate(
            max_cooldown=settings.max_cooldown, probe_lease=settings.request_timeout + 5, clock=clock, sleep=sleep
        )
        self._sleep = sleep
        self._clock = clock
        self._rand = rand

    def __repr__(self) -> str:  # the client holds the key; never print it
        return f"GeminiCaller(model={self.settings.model!r}, max_retries={self.settings.max_retries})"

    def generate(
        self, prompt: Prompt, parts: list[types.Part], kind: RequestKind, *, deadline: float, model: str | None = None,
        history: Sequence[types.Content] = (), cached_content: str | None = None,
    ) -> Reply:
        """Ask `model` (settings.model when None, resolved through gemini/models.py); `deadline` is an
        absolute time on this caller's clock (time.monotonic). `history`: prior turns (few-shot
        examples, gemini/fewshot.py) sent before the request's own turn; `cached_content`: the context
        cache holding them instead (gemini/ctxcache.py)."""
        kind = RequestKind(kind)
        started = self._clock()
        target, contents, base_config = build_request(self.settings, prompt, parts, kind, model, history, cached_content)
        try:
            reply = self._with_retries(contents, base_config, deadline, target)
        except GeminiError as exc:
            self.metrics.gemini_requests.labels(kind=kind.value, outcome=exc.reason).inc()
            raise
        finally:
            self.metrics.gemini_seconds.observe(max(0.0, self._clock() - started))
        self._count(kind, reply, target)
        return reply

    def _count(self, kind: RequestKind, reply: Reply, model: str) -> None:
        if reply.block_reason:
            outcome = "blocked"
        elif reply.finish_reason == "MAX_TOKENS":
            outcome = "max_tokens"
        elif not reply.text:
            outcome = "empty"
        else:
            outcome = "ok"
        self.metrics.gemini_requests.labels(kind=kind.value, outcome=outcome).inc()
        charge = getattr(self.gate, "charge", None)  # the shared quota (gemini/quota.py) counts input tokens
        if charge is not None:
            charge(reply.usage.prompt_tokens, model)
        record_usage(model, reply.usage.prompt_tokens, reply.usage.output_tokens, reply.usage.thoughts_tokens,
                     reply.usage.cached_tokens)
        for direction, tokens in (
            ("input", reply.usage.prompt_tokens),
            ("output", reply.usage.output_tokens),
            ("thoughts", reply.usage.thoughts_tokens),
            ("cached", reply.usage.cached_tokens),  # of "input": billed at the cached rate (pricing.py)
        ):
            if tokens > 0:
                self.metrics.gemini_tokens.labels(direction=direction).inc(tokens)
        if self.usage is not None:
            self.usage.record_call(model, reply.usage.prompt_tokens, reply.usage.output_tokens, reply.usage.thoughts_tokens,
                                   reply.usage.cached_tokens)

    def _with_retries(
        self, contents: list[types.Content], base_config: types.GenerateContentConfig, deadline: float, model: str
    ) -> Reply:
        retries = 0
        while True:
            probe = self.gate.wait(deadline, model)
            answered = False  # the probe's answer was handed to the gate
            try:
                left = deadline - self._clock()
                if left < MIN_ATTEMPT_SECONDS:
                    raise GeminiError(
                        "no time left before the prediction deadline to call Gemini"
                        + (f" (after {retries} retries)" if retries else ""),
                        retryable=True,
                        reason="deadline",
                    )
                timeout = min(self.settings.request_timeout, left)
                config = base_config.model_copy(update={"http_options": types.HttpOptions(timeout=max(1, int(timeout * 1000)))})
                try:
                    response = self.client.models.generate_content(model=model, contents=contents, config=config)
                    reply = reply_from(response)
                except Exception as exc:  # classified below; anything unknown is re-raised as GeminiError
                    failure = self._classify(exc, timeout)
                else:
                    if probe:
                        self.gate.probe_done(ok=True)
                        answered = True
                    return reply
                delay = failure.delay if failure.delay is not None else backoff_delay(retries, self._rand)
                if failure.retry_reason == "rate_limited":
                    delay = self.gate.cool_down(delay, model)  # capped; everybody waits, even if this call gives up below
                    answered = True
            finally:
                if probe and not answered:
                    self.gate.probe_done(ok=False)
            if not failure.error.retryable:
                raise failure.error from failure.cause
            if retries >= self.settings.max_retries:
                raise GeminiError(
                    f"{failure.error.message} (gave up after {retries + 1} attempts)",
                    status=failure.error.status,
                    retryable=True,
                    reason=failure.error.reason,
                ) from failure.cause
            if self._clock() + delay > deadline:
                raise GeminiError(
                    f"{failure.error.message} (not retried: the next attempt in {delay:.1f} s "
                    "would come after the prediction deadline)",
                    status=failure.error.status,
                    retryable=True,
                    reason=failure.error.reason,
                ) from failure.cause
            retries += 1
            self.metrics.gemini_retries.labels(reason=failure.retry_reason).inc()
            log.info("Gemini call failed (%s), retry %d in %.2f s", failure.error.reason, retries, delay)
            if failure.retry_reason != "rate_limited" and delay > 0:
                self._sleep(delay)  # a 429's wait happens in gate.wait at the loop's top

    def _classify(self, exc: Exception, timeout: float) -> _Failure:
        key = self.settings.api_key
        if isinstance(exc, genai_errors.APIError):
            error = from_api_error(exc.code, exc.status, exc.message, api_key=key)
            delay = retry_delay_from(exc.details) if exc.code == 429 else None
            retry_reason = error.reason if error.reason in ("rate_limited", "server", "timeout") else "server"
            return _Failure(error, delay, retry_reason, exc)
        if TRANSPORT_ERRORS and isinstance(exc, TRANSPORT_ERRORS):
            is_timeout = "Timeout" in type(exc).__name__
            if is_timeout:
                message = f"Gemini did not answer within {timeout:.1f} s"
            else:
                message = f"could not reach Gemini: {redact(type(exc).__name__ + ': ' + str(exc), key)[:200]}"
            reason = "timeout" if is_timeout else "connection"
            return _Failure(GeminiError(message, retryable=True, reason=reason), None, reason, exc)
        if isinstance(exc, json.JSONDecodeError):  # a 200 whose body is not JSON: a broken proxy/server
            return _Failure(
                GeminiError("Gemini sent an answer that is not valid JSON", retryable=True, reason="bad_response"),
                None,
                "bad_response",
                exc,
            )
        detail = redact(f"{type(exc).__name__}: {exc}", key)[:300]
        return _Failure(GeminiError(f"the Gemini call failed: {detail}", retryable=False, reason="client"), None, "client", exc)
