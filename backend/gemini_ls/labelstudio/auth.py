"""Label Studio credentials: which Authorization header one API key gives, with the refresh.

Every call to Label Studio goes through this: the REST API (client.py) and the downloads of
/data/upload and /data/local-files images (images/fetch.py). Label Studio 1.23 accepts two kinds
of API key (docs/gemini-facts.md#label-studio-123):

* the legacy DRF token, sent as `Authorization: Token <key>` (dead when the organisation has
  legacy tokens disabled: LS answers 401);
* a personal access token (PAT): a JWT whose payload says `token_type: "refresh"`. It cannot be
  used directly; POST /api/token/refresh/ {"refresh": PAT} returns a 5-minute access JWT that is
  sent as `Authorization: Bearer <access>`. We cache that access token and refresh it 30 s before
  its `exp` so a download never starts with a token about to die.

A JWT that is already an access token is sent as Bearer as-is (it cannot be renewed).

A failed refresh raises `LabelStudioAuthError` with a fixed `reason` word; the image fetcher turns
it into an `ImageError` of the same reason, the API client into a `LabelStudioApiError`.
Which key goes to which URL (environment or /setup) is credentials.py's. Nothing here ever logs or
formats the key itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

import requests

from ..urls import origin, redact_url
from .errors import LabelStudioAuthError

log = logging.getLogger("gemini_ls.labelstudio")

KeyKind = Literal["legacy", "pat", "access"]
Source = Literal["env", "setup"]

REFRESH_MARGIN = 30.0  # seconds before `exp` at which the cached access token is renewed
DEFAULT_ACCESS_LIFETIME = 300.0  # LS 1.23 issues 5-minute access tokens; used when `exp` is missing
REFRESH_PATH = "/api/token/refresh/"


def jwt_payload(token: str) -> dict | None:
    """The (unverified) payload of a well-formed JWT, None for anything else.

    We never verify the signature: Label Studio does that; we only need `token_type` and `exp`.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        header = json.loads(_b64url(parts[0]))
        payload = json.loads(_b64url(parts[1]))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        return None
    return payload


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def key_kind(api_key: str) -> KeyKind:
    payload = jwt_payload(api_key)
    if payload is None:
        return "legacy"
    return "pat" if payload.get("token_type") == "refresh" else "access"


def key_label(source: Source) -> str:
    return "LABEL_STUDIO_API_KEY" if source == "env" else "the access token Label Studio sent in /setup"


class LabelStudioAuth:
    """Credentials for one Label Studio instance. Thread-safe; the access-token cache is per object."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        session: requests.Session | None = None,
        source: Source = "env",
        refresh_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        base_url = (base_url or "").strip().rstrip("/")
        if origin(base_url) is None:
            raise ValueError(
                f"Label Studio URL {redact_url(base_url)!r} is not an http(s) URL "
                "(expected e.g. http://label-studio:8080)"
            )
        if not api_key or not api_key.strip():
            raise ValueError("Label Studio API key is empty")
        self.base_url = base_url
        self.source: Source = source
        self.kind: KeyKind = key_kind(api_key.strip())
        self._key = api_key.strip()
        self._session = session or requests.Session()
        self._refresh_timeout = refresh_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._access: str | None = None
        self._access_exp = 0.0

    def __repr__(self) -> str:  # never the key
        return f"LabelStudioAuth({self.base_url!r}, kind={self.kind!r}, source={self.source!r})"

    @property
    def fingerprint(self) -> tuple[str, str, str]:
        """What identifies these credentials without revealing the key (for change detection)."""
        return self.base_url, self.kind, hashlib.sha256(self._key.encode()).hexdigest()[:16]

    def owns(self, url: str) -> bool:
        """True when `url` points at this Label Studio (same scheme, host and port): only then
        may the Authorization header be sent."""
        mine = origin(self.base_url)
        return mine is not None and origin(url) == mine

    def headers(self) -> dict[str, str]:
        """The Authorization header for a request to this Label Studio (LabelStudioAuthError when a
        personal access token cannot be refreshed)."""
        if self.kind == "legacy":
            return {"Authorization": f"Token {self._key}"}
        if self.kind == "access":
            return {"Authorization": f"Bearer {self._key}"}
        return {"Authorization": f"Bearer {self._access_token()}"}

    def invalidate(self) -> None:
        """Forget the cached access token (after Label Studio answered 401 to it)."""
        with self._lock:
            self._access, self._access_exp = None, 0.0

    def _access_token(self) -> str:
        # One lock for check-and-refresh: concurrent downloads wait for a single refresh instead of
        # all hitting /api/token/refresh/ at once.
        with self._lock:
            now = self._clock()
            if self._access is None or now >= self._access_exp - REFRESH_MARGIN:
                self._access, self._access_exp = self._refresh(now)
            return self._access

    def _refresh(self, now: float) -> tuple[str, float]:
        url = self.base_url + REFRESH_PATH
        what = f"Label Studio rejected {key_label(self.source)} (a personal access token)"
        try:
            resp = self._session.post(
                url, json={"refresh": self._key}, timeout=self._refresh_timeout, allow_redirects=False
            )
        except requests.Timeout:
            raise LabelStudioAuthError(
                "timeout", f"Label Studio at {self.base_url} did not answer the token refresh "
                f"({REFRESH_PATH}) within {self._refresh_timeout:g} s"
            ) from None
        except requests.RequestException as exc:
            raise LabelStudioAuthError(
                "connection", f"Cannot reach Label Studio at {self.base_url} to refresh the personal "
                f"access token: {type(exc).__name__}. Check LABEL_STUDIO_URL."
            ) from None
        if resp.status_code in (401, 403):
            raise LabelStudioAuthError(
                "unauthorized",
                f"{what}: refresh returned {resp.status_code} at {url}. The token was revoked, rotated "
                "or belongs to another Label Studio; create a new one under Account & Settings.",
            )
        if resp.status_code != 200:
            raise LabelStudioAuthError(
                "unauthorized" if resp.status_code in (400, 404) else "http_error",
                f"{what}: refresh returned {resp.status_code} at {url} (does this Label Studio "
                "support personal access tokens? Otherwise use a legacy token).",
            )
        try:
            access = resp.json().get("access")
        except (ValueError, AttributeError):
            access = None
        if not isinstance(access, str) or not access:
            raise LabelStudioAuthError(
                "http_error", f"Label Studio's token refresh at {url} answered 200 without an access token"
            )
        payload = jwt_payload(access) or {}
        exp = payload.get("exp")
        lifetime_end = float(exp) if isinstance(exp, (int, float)) else now + DEFAULT_ACCESS_LIFETIME
        log.debug("Refreshed the Label Studio access token (valid for %.0f s)", lifetime_end - now)
        return access, lifetime_end
