"""The state of one emulator (files, batches, faults, counters, keys, seen images) and its
python-side control, which mirrors the /_emulator/* endpoints. The HTTP side is handler.py; the
server that runs it, server.py.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
import threading
import time
from collections import OrderedDict, deque

from . import errors, vision
from . import mistakes as mistakes_mod
from .batches import BatchStore
from .caches import CacheStore
from .faults import FaultPlan
from .files import FileStore
from .keys import DEFAULT_API_KEY

FILE_TTL_SECONDS = 48 * 3600
ARRIVALS_KEPT = 10000
_VISION_CACHE_SIZE = 64


class EmulatorState:
    """All state of an emulator lives on this object (EmulatorServer adds the HTTP server's lifecycle)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: frozenset[str] | set[str] = frozenset({DEFAULT_API_KEY}),
        latency: float = 0.0,
        jitter: float = 0.0,
        file_ttl_seconds: float = FILE_TTL_SECONDS,
        seed: int = 0,
        verbose: bool = False,
    ):
        self.host = host
        self.port = port
        self.latency = latency
        self.jitter = jitter
        self.verbose = verbose
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._api_keys = set(api_keys)
        self.files = FileStore(file_ttl_seconds, random.Random(seed + 1))
        self.faults = FaultPlan(random.Random(seed + 2))
        self.batches = BatchStore(self)  # the Batch API (batches.py)
        self.caches = CacheStore(self, random.Random(seed + 3))  # cachedContents (caches.py)
        self._counters = self._zero_counters()
        self.mistakes: mistakes_mod.Mistakes | None = None  # see mistakes.py
        self.recorded: deque[dict] = deque(maxlen=0)  # generateContent bodies, once `record` is called
        self._vision_cache: OrderedDict[str, vision.SeenImage] = OrderedDict()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    # ----- python-side control (mirrors /_emulator/*) ----------------------------------------
    def add_api_key(self, key: str) -> None:
        with self._lock:
            self._api_keys.add(key)

    def api_keys(self) -> set[str]:
        with self._lock:
            return set(self._api_keys)

    def add_fault(self, fault: str, *, count: int | None = None, rate: float | None = None,
                  args: dict | None = None, routes: list[str] | None = None) -> None:
        """Inject `fault` into the next `count` (default 1) requests, or into a `rate` share of them.

        `routes` defaults to ["generateContent"] ("upload" for the processing fault); "*" means all.
        """
        self.faults.add(fault, count=count, rate=rate, args=args, routes=routes)

    def clear_faults(self) -> None:
        self.faults.clear()

    def set_latency(self, latency: float, jitter: float = 0.0) -> None:
        with self._lock:
            self.latency, self.jitter = latency, jitter

    def expire_files(self, ids: list[str] | None = None) -> int:
        """Make files (all, or those ids) expire now; returns how many."""
        return self.files.expire(ids)

    def set_file_state(self, file_id: str, state: str) -> None:
        if state not in ("PROCESSING", "ACTIVE", "FAILED"):
            raise ValueError("state must be PROCESSING, ACTIVE or FAILED")
        self.files.set_state(file_id, state)

    def reset(self, *, files: bool = False) -> None:
        """Clear faults, mistakes and counters (and stored files when `files`)."""
        self.faults.clear()
        self.mistakes = None
        with self._lock:
            self._counters = self._zero_counters()
            self.recorded = deque(maxlen=0)
        self.batches.reset(batches=files)
        self.caches.reset_counts()
        if files:
            self.files.clear()
            self.caches.clear()

    def record(self, keep: int = 100) -> None:
        """From now on keep the last `keep` generateContent bodies (parsed JSON) in `recorded`, for
        tests that check what reached the wire (off by default and after `reset`: bodies can carry
        megabytes of inline images)."""
        with self._lock:
            self.recorded = deque(maxlen=keep)

    def counters(self) -> dict:
        with self._lock:
            snapshot = json.loads(json.dumps(self._counters))
        snapshot.update(self.files.snapshot())
        snapshot.update(self.batches.snapshot())
        snapshot.update(self.caches.snapshot())
        return snapshot

    # ----- internals -------------------------------------------------------------------------
    @staticmethod
    def _zero_counters() -> dict:
        return {
            "requests": {},
            "statuses": {},
            "faults": {},
            "uploads": 0,
            "bytes_received": 0,
            "tokens": {"prompt": 0, "candidates": 0, "total": 0},
            "models": {},  # per model asked: requests and tokens (routing tests, token benchmarks)
            "arrivals": {},  # route -> epoch seconds of the last ARRIVALS_KEPT requests (rate-limit tests)
        }

    def _count_model(self, model: str, prompt: int, candidates: int, thoughts: int) -> None:
        with self._lock:
            entry = self._counters["models"].setdefault(model, {"requests": 0, "prompt": 0, "candidates": 0, "thoughts": 0})
            entry["requests"] += 1
            entry["prompt"] += prompt
            entry["candidates"] += candidates
            entry["thoughts"] += thoughts

    def _count(self, *, route: str | None = None, status: int | None = None, fault: str | None = None,
               nbytes: int = 0, upload: bool = False, prompt_tokens: int = 0, candidate_tokens: int = 0) -> None:
        with self._lock:
            c = self._counters
            if route:
                c["requests"][route] = c["requests"].get(route, 0) + 1
                times = c["arrivals"].setdefault(route, [])
                times.append(time.time())
                del times[:-ARRIVALS_KEPT]
            if status is not None:
                c["statuses"][str(status)] = c["statuses"].get(str(status), 0) + 1
            if fault:
                c["faults"][fault] = c["faults"].get(fault, 0) + 1
            c["bytes_received"] += nbytes
            c["uploads"] += int(upload)
            c["tokens"]["prompt"] += prompt_tokens
            c["tokens"]["candidates"] += candidate_tokens
            c["tokens"]["total"] += prompt_tokens + candidate_tokens

    def _random_id(self, n: int) -> str:
        alphabet = string.ascii_letters + string.digits + "-_"
        with self._lock:
            return "".join(self._rng.choice(alphabet) for _ in range(n))

    def _sleep(self, seconds: float, jitter: float) -> None:
        if seconds <= 0 and jitter <= 0:
            return
        with self._lock:
            delta = self._rng.uniform(-jitter, jitter) if jitter > 0 else 0.0
        time.sleep(max(0.0, seconds + delta))

    def _see(self, data: bytes) -> vision.SeenImage:
        key = hashlib.sha256(data).hexdigest()
        with self._lock:
            cached = self._vision_cache.get(key)
            if cached is not None:
                self._vision_cache.move_to_end(key)
                return cached
        try:
            seen = vision.see(vision.decode_raw(data), source=data)
        except vision.UndecodableImage:
            raise errors.invalid_argument(
                "Unable to process input image. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting"
            ) from None
        with self._lock:
            self._vision_cache[key] = seen
            while len(self._vision_cache) > _VISION_CACHE_SIZE:
                self._vision_cache.popitem(last=False)
        return seen

    def _check_key(self, key: str | None) -> str:
        if key is None or key.strip() == "":
            raise errors.missing_api_key()
        key = key.strip()
        with self._lock:
            known = key in self._api_keys
        if not known:
            raise errors.bad_api_key()
        return key
