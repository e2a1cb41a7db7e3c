"""The two exceptions of the Label Studio client.

`LabelStudioAuthError`: a personal access token could not be exchanged for an access token. Its
`reason` is one of the image edge's words (images/errors.py), so a download turns it into an
`ImageError` of the same reason without a table.

`LabelStudioApiError`: a REST call failed. `status` is Label Studio's HTTP status (None when it did
not answer); `transient` says whether trying again may help (5xx, 408, 429, timeouts, connection
errors), which is what every retry loop of the package looks at.

Messages never contain a key or a token.
"""

from __future__ import annotations

from typing import Literal

AuthReason = Literal["timeout", "connection", "unauthorized", "http_error"]


class LabelStudioAuthError(Exception):
    def __init__(self, reason: AuthReason, message: str) -> None:
        super().__init__(message)
        self.reason: AuthReason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"LabelStudioAuthError({self.reason!r}, {self.message!r})"


class LabelStudioApiError(Exception):
    def __init__(self, message: str, *, status: int | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient
