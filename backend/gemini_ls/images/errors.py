"""The one exception the image edge raises.

`reason` is a short fixed word (safe as a Prometheus label value); `str(error)` is a sentence fit
for a Label Studio user: it ends up in logs and in the error Label Studio shows. Messages never
contain an API key or token, and URLs in them go through `redact_url` first.
"""

from __future__ import annotations

from typing import Literal

Reason = Literal[
    "not_found",
    "unauthorized",
    "forbidden",
    "http_error",
    "too_large",
    "too_many_pixels",
    "redirect_loop",
    "timeout",
    "blocked_address",
    "unsupported_url",
    "empty",
    "not_an_image",
    "corrupt",
    "connection",
]

REASONS: frozenset[str] = frozenset(Reason.__args__)  # type: ignore[attr-defined]


class ImageError(Exception):
    """A task's image could not be fetched or prepared; `reason` is the metrics word."""

    def __init__(self, reason: Reason, message: str) -> None:
        if reason not in REASONS:  # a typo here would silently create a new metrics series
            raise ValueError(f"unknown ImageError reason {reason!r}")
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"ImageError({self.reason!r}, {self.message!r})"
