"""Errors of the Gemini call layer, with messages fit to show a Label Studio user.

`GeminiError` carries what the caller needs to decide: the HTTP status (None for network
failures), whether trying again later could help, and a short fixed `reason` word that is safe
as a metric label. `FileRejected` marks Gemini refusing a Files-API reference (expired, another
key's, not ACTIVE yet) so the files layer can evict and re-upload instead of failing the task.

No message ever contains the API key: `from_api_error` builds messages from Gemini's status and
message only, and `redact` scrubs a secret from any text we did not write ourselves.
"""

from __future__ import annotations

import re
from typing import Any

# Gemini's own status word -> our reason word (metric label, fixed vocabulary).
_STATUS_REASONS = {
    "INVALID_ARGUMENT": "invalid_argument",
    "FAILED_PRECONDITION": "failed_precondition",
    "PERMISSION_DENIED": "permission_denied",
    "UNAUTHENTICATED": "unauthenticated",
    "NOT_FOUND": "not_found",
    "RESOURCE_EXHAUSTED": "rate_limited",
    "INTERNAL": "server",
    "UNAVAILABLE": "server",
    "DEADLINE_EXCEEDED": "timeout",
}
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_DETAIL_CHARS = 300  # Gemini's messages are short; an HTML error page is not worth showing whole


class GeminiError(Exception):
    """A Gemini call that did not produce an answer."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False, reason: str = "error"):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status={self.status}, retryable={self.retryable}, reason={self.reason!r})"


class FileRejected(GeminiError):
    """Gemini refused a file reference: evict the cached URI and upload again."""


def redact(text: str, secret: str | None) -> str:
    """`text` with every occurrence of `secret` (and its stripped form) replaced by '***'."""
    if not secret:
        return text
    for form in {secret, secret.strip()}:
        if form:
            text = text.replace(form, "***")
    return text


def _short(text: Any) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def _is_file_rejection(code: int, status: str, message: str) -> bool:
    mentions_file = bool(re.search(r"\bfiles?\b", message, re.IGNORECASE))
    if code == 400 and status == "FAILED_PRECONDITION":
        return True  # "The File x is not in an ACTIVE state and usage is not allowed."
    return code in (403, 404) and mentions_file


def from_api_error(code: int | None, status: str | None, message: str | None, *, api_key: str | None = None) -> GeminiError:
    """A GeminiError for an HTTP error answer of Gemini (status word and message as sent)."""
    code = int(code) if code else None
    status_word = str(status or "").strip().upper()
    detail = redact(_short(message), api_key)
    head = f"{code} {status_word}".strip() if code else status_word or "an error"
    reason = _STATUS_REASONS.get(status_word) or (
        "rate_limited" if code == 429 else "server" if code and code >= 500 else "rejected"
    )
    retryable = code in RETRYABLE_STATUS if code else False
    if code == 429:
        text = f"Gemini's rate limit or quota is exhausted ({head}): {detail}"
    elif code and code >= 500:
        text = f"Gemini had a server error ({head}): {detail}"
    elif code in (400, 401, 403) and re.search(r"\bapi[ _]?key\b", detail, re.IGNORECASE):
        # Gemini answers a bad key with 400 INVALID_ARGUMENT "API key not valid" (reason API_KEY_INVALID)
        text = f"Gemini refused the API key ({head}): {detail}"
        reason = "bad_api_key"
    else:
        text = f"Gemini rejected the request: {head}: {detail}"
    if code and _is_file_rejection(code, status_word, detail):
        return FileRejected(text, status=code, retryable=False, reason="file_rejected")
    return GeminiError(text, status=code, retryable=retryable, reason=reason)
