"""The boundary between the prediction pipeline and a vision model provider.

The pipeline (predict.py) plans requests, prepares images and turns parsed answers into Label
Studio regions; everything provider-specific (prompt wording, model choice, the call, retries,
file uploads, parsing the answer text) sits behind `VisionProvider.answer`: a planned request and
its images in, a typed `ParsedAnswer` out, or a `ProviderError`. gemini/gateway.py is the Gemini
implementation; a second provider is one more package implementing this protocol, plus wiring.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from .detections import ParsedAnswer
from .images.prepare import PreparedImage
from .plan import PlannedRequest


class ProviderError(Exception):
    """The provider could not answer: `reason` is a metric-safe word that names the provider
    ("gemini_timeout", "gemini_blocked", ...), `message` what a Label Studio user should read."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class CallHealth:
    """The last success and failure of a provider's calls, for /health (never probed per call)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    def ok(self) -> None:
        with self._lock:
            self.last_ok = time.time()

    def failed(self, message: str) -> None:
        with self._lock:
            self.last_error, self.last_error_at = message[:300], time.time()

    @property
    def reachable(self) -> bool | None:
        """None before any call; else whether the latest call got through."""
        with self._lock:
            if self.last_ok is None and self.last_error is None:
                return None
            return self.last_ok is not None and (self.last_error_at is None or self.last_ok >= self.last_error_at)


class VisionProvider(Protocol):
    health: CallHealth

    def answer(
        self, plan: PlannedRequest, images: Sequence[PreparedImage], *, uses: Mapping[str, int], deadline: float
    ) -> ParsedAnswer:
        """Ask for `plan` on `images` (in the plan's order) before `deadline` (time.monotonic()).

        `uses` says how many requests of the batch send each image (by sha256), so an uploader can
        decide whether uploading once beats sending the bytes each time. Raises ProviderError."""
        ...
