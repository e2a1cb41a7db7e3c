"""Faults on demand: per request (x-emulator-fault header) or per server (control endpoint).

Header:  x-emulator-fault: <name>[;<arg>=<value>]...[, <name>...]
Server:  POST /_emulator/faults {"fault": name, "count": N | "rate": p, "args": {...}, "routes": [...]}
         or {"faults": [ {...}, {...} ]} for a random mix (each rule fires by its own count/rate).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

# name -> what it does (also the README's list)
FAULTS: dict[str, str] = {
    "latency": "sleep `seconds` (default 1.0; 'seconds=1.0+-0.3' for jitter) before answering",
    "429": "429 RESOURCE_EXHAUSTED with google.rpc.RetryInfo retryDelay `retry_delay` seconds (default 7)",
    "500": "500 INTERNAL",
    "503": "503 UNAVAILABLE (model overloaded)",
    "drop": "close the socket without any HTTP response",
    "truncate": "cut the answer mid-JSON, finishReason MAX_TOKENS (`fraction` kept, default 0.6)",
    "prose": "wrap the JSON answer in ```json fences plus a sentence, even in JSON mode",
    "coords_out_of_range": "push coordinates beyond 0-1000",
    "coords_inverted": "swap min and max of every box (ymax < ymin, xmax < xmin)",
    "mask_tokens": "masks as '<start_of_mask><seg_12>...' tokens",
    "mask_bool_list": "masks as lists of booleans",
    "empty_candidates": "200 with an empty candidates list",
    "safety_block": "200 with promptFeedback.blockReason SAFETY and no candidates",
    "interactive_all": "answer a click or box prompt with EVERY object of the asked label (largest first), "
                       "not only the one under the points or in the box",
    "processing": "newly uploaded files stay PROCESSING (`seconds` until ACTIVE; default forever)",
}
ERROR_FAULTS = ("drop", "429", "500", "503")
DEFAULT_ROUTES = ("generateContent",)  # server-wide rules hit model calls unless told otherwise
UPLOAD_ROUTES = ("upload",)


class FaultError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    name: str
    args: dict = field(default_factory=dict)

    def arg(self, key: str, default):
        return self.args.get(key, default)


def parse_latency(value) -> tuple[float, float]:
    """'1.0', 1.0 or '1.0+-0.3' -> (seconds, jitter)."""
    text = str(value).replace(" ", "")
    if "+-" in text:
        base, jitter = text.split("+-", 1)
        return float(base), float(jitter)
    return float(text), 0.0


def parse_header(value: str) -> list[Fault]:
    faults = []
    for spec in value.split(","):
        spec = spec.strip()
        if not spec:
            continue
        name, *pairs = [p.strip() for p in spec.split(";")]
        if name not in FAULTS:
            raise FaultError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
        args = {}
        for pair in pairs:
            k, _, v = pair.partition("=")
            args[k.strip()] = v.strip()
        faults.append(Fault(name, args))
    return faults


@dataclass
class FaultRule:
    fault: Fault
    count: int | None  # fires for the next N matching requests
    rate: float | None  # or with this probability per request
    routes: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"fault": self.fault.name, "args": self.fault.args, "count": self.count, "rate": self.rate,
                "routes": list(self.routes)}


class FaultPlan:
    """Server-wide fault rules; thread-safe, random choices from the server's seeded RNG."""

    def __init__(self, rng: random.Random):
        self._rng = rng
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, fault: str, *, count: int | None = None, rate: float | None = None,
            args: dict | None = None, routes: list[str] | tuple[str, ...] | None = None) -> FaultRule:
        if fault not in FAULTS:
            raise FaultError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        if count is None and rate is None:
            count = 1
        if rate is not None and not 0.0 <= float(rate) <= 1.0:
            raise FaultError("rate must be within 0..1")
        default_routes = UPLOAD_ROUTES if fault == "processing" else DEFAULT_ROUTES
        rule = FaultRule(Fault(fault, dict(args or {})), None if count is None else int(count),
                         None if rate is None else float(rate), tuple(routes or default_routes))
        with self._lock:
            self._rules.append(rule)
        return rule

    def draw(self, route: str) -> list[Fault]:
        """The faults that fire for one request on `route`."""
        fired = []
        with self._lock:
            for rule in list(self._rules):
                if route not in rule.routes and "*" not in rule.routes:
                    continue
                if rule.count is not None:
                    if rule.count <= 0:
                        continue
                    rule.count -= 1
                    fired.append(rule.fault)
                    if rule.count == 0:
                        self._rules.remove(rule)
                elif rule.rate is not None and self._rng.random() < rule.rate:
                    fired.append(rule.fault)
        return fired

    def rules(self) -> list[dict]:
        with self._lock:
            return [r.as_dict() for r in self._rules]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
