"""Label Studio credentials for fetching /data/upload and /data/local-files images.

Label Studio 1.23 accepts two kinds of API key (docs/gemini-facts.md#label-studio-123):

* the legacy DRF token, sent as `Authorization: Token <key>` (dead when the organisation has
  legacy tokens disabled: LS answers 401);
* a personal access token (PAT): a JWT whose payload says `token_type: "refresh"`. It cannot be
  used directly; POST /api/token/refresh/ {"refresh": PAT} returns a 5-minute access JWT that is
  sent as `Authorization: Bearer <access>`. We cache that access token and refresh it 30 s before
  its `exp` so a download never starts with a token about to die.

A JWT that is already an access token is sent as Bearer as-is (it cannot be renewed).

`CredentialStore` holds the credentials in use. LABEL_STUDIO_URL + LABEL_STUDIO_API_KEY from the
environment win; otherwise the `hostname` and `access_token` Label Studio sends in /setup are used
(that token is always the project creator's legacy token, so it fails when legacy tokens are off).

Who may receive which key: /setup is an unauthenticated call anybody who reaches the backend can
make, so its `hostname` must never attract the operator's key. LABEL_STUDIO_API_KEY is only ever
paired with LABEL_STUDIO_URL (set without it, it is not used at all, and a warning says so); a
/setup `hostname` is only paired with the `access_token` of that same /setup.
Neither class ever logs or formats the key itself.
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

from .errors import ImageError
from .urls import origin, redact_url

log = logging.getLogger("gemini_ls.images")

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


def _key_label(source: Source) -> str:
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
        """The Authorization header for a request to this Label Studio."""
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
        what = f"Label Studio rejected {_key_label(self.source)} (a personal access token)"
        try:
            resp = self._session.post(
                url, json={"refresh": self._key}, timeout=self._refresh_timeout, allow_redirects=False
            )
        except requests.Timeout:
            raise ImageError(
                "timeout", f"Label Studio at {self.base_url} did not answer the token refresh "
                f"({REFRESH_PATH}) within {self._refresh_timeout:g} s"
            ) from None
        except requests.RequestException as exc:
            raise ImageError(
                "connection", f"Cannot reach Label Studio at {self.base_url} to refresh the personal "
                f"access token: {type(exc).__name__}. Check LABEL_STUDIO_URL."
            ) from None
        if resp.status_code in (401, 403):
            raise ImageError(
                "unauthorized",
                f"{what}: refresh returned {resp.status_code} at {url}. The token was revoked, rotated "
                "or belongs to another Label Studio; create a new one under Account & Settings.",
            )
        if resp.status_code != 200:
            raise ImageError(
                "unauthorized" if resp.status_code in (400, 404) else "http_error",
                f"{what}: refresh returned {resp.status_code} at {url} (does this Label Studio "
                "support personal access tokens? Otherwise use a legacy token).",
            )
        try:
            access = resp.json().get("access")
        except (ValueError, AttributeError):
            access = None
        if not isinstance(access, str) or not access:
            raise ImageError(
                "http_error", f"Label Studio's token refresh at {url} answered 200 without an access token"
            )
        payload = jwt_payload(access) or {}
        exp = payload.get("exp")
        lifetime_end = float(exp) if isinstance(exp, (int, float)) else now + DEFAULT_ACCESS_LIFETIME
        log.debug("Refreshed the Label Studio access token (valid for %.0f s)", lifetime_end - now)
        return access, lifetime_end


class CredentialStore:
    """The Label Studio credentials currently in use: environment first, /setup as the fallback.

    LABEL_STUDIO_URL beats /setup's `hostname`. The key sent to that URL:

    * LABEL_STUDIO_URL + LABEL_STUDIO_API_KEY: the env key;
    * LABEL_STUDIO_URL alone: /setup's `access_token` (sent to the operator's URL only);
    * no LABEL_STUDIO_URL: /setup's `hostname` with /setup's `access_token`, never the env key.

    The resulting `LabelStudioAuth` is kept (with its access-token cache) until one of them actually
    changes, because Label Studio calls /setup very often.
    """

    def __init__(
        self,
        env_url: str | None = None,
        env_key: str | None = None,
        *,
        session: requests.Session | None = None,
    ) -> None:
        self._env_url = (env_url or "").strip().rstrip("/") or None
        self._env_key = (env_key or "").strip() or None
        self._session = session
        self._lock = threading.Lock()
        self._setup_url: str | None = None
        self._setup_key: str | None = None
        self._auth: LabelStudioAuth | None = None
        self._announced: object = (None,)  # last state logged: "nothing known" is not worth a line
        if self._env_key and not self._env_url:
            log.warning(
                "LABEL_STUDIO_API_KEY is set but LABEL_STUDIO_URL is not: the key is not used (it is only "
                "ever sent to LABEL_STUDIO_URL, never to a host named in /setup). Set LABEL_STUDIO_URL to "
                "Label Studio's address"
            )
        self._rebuild()

    @classmethod
    def from_settings(cls, settings, *, session: requests.Session | None = None) -> CredentialStore:
        return cls(settings.label_studio_url, settings.label_studio_api_key, session=session)

    def current(self) -> LabelStudioAuth | None:
        return self._auth

    @property
    def base_url(self) -> str | None:
        """Label Studio's URL (for relative /data/upload paths), even when no key is known."""
        return self._env_url or self._setup_url

    @property
    def trusted_origin(self) -> tuple[str, str, int] | None:
        """Label Studio's origin as the operator set it (LABEL_STUDIO_URL): the only one the SSRF
        guard may exempt. A /setup hostname is not: anybody can call /setup."""
        return origin(self._env_url) if self._env_url else None

    @property
    def from_setup(self) -> bool:
        """True when Label Studio's URL came from /setup (no LABEL_STUDIO_URL)."""
        return self._env_url is None and self._setup_url is not None

    def describe(self) -> dict[str, str | None]:
        """For /health: where Label Studio is and what kind of key is in use (never the key)."""
        auth = self._auth
        return {
            "url": self.base_url,
            "key_type": auth.kind if auth else None,  # legacy | pat | access
            "source": auth.source if auth else None,  # env | setup
        }

    def update_from_setup(self, hostname: str | None, access_token: str | None) -> None:
        """Record what Label Studio sent in /setup. Cheap and idempotent."""
        url = (hostname or "").strip().rstrip("/") or None
        if url is not None and origin(url) is None:
            log.warning(
                "Label Studio sent hostname %r in /setup, which is not an http(s) URL; ignored "
                "(set LABEL_STUDIO_HOST in Label Studio or LABEL_STUDIO_URL here)", redact_url(url)
            )
            url = None
        key = (access_token or "").strip() or None
        with self._lock:
            if (url, key) == (self._setup_url, self._setup_key):
                return
            self._setup_url, self._setup_key = url, key
            self._rebuild()

    def _rebuild(self) -> None:
        url: str | None
        key: str | None
        source: Source
        if self._env_url:
            url = self._env_url
            key, source = (self._env_key, "env") if self._env_key else (self._setup_key, "setup")
        else:  # a /setup hostname gets the token of that /setup, never the env key
            url, key, source = self._setup_url, self._setup_key, "setup"
        auth: LabelStudioAuth | None = None
        if url and key:
            try:
                auth = LabelStudioAuth(url, key, session=self._session, source=source)
            except ValueError as exc:
                log.warning("Label Studio credentials unusable: %s", exc)
        if auth is not None and self._auth is not None and auth.fingerprint == self._auth.fingerprint \
                and auth.source == self._auth.source:
            auth = self._auth  # unchanged: keep the cached access token
        self._auth = auth
        self._announce(url, source)

    def _announce(self, url: str | None, source: Source) -> None:
        auth = self._auth
        state = auth.fingerprint + (auth.source,) if auth else (url,)
        if state == self._announced:
            return
        self._announced = state
        if auth is None:
            log.info(
                "No Label Studio credentials yet%s: /data/upload images cannot be fetched until "
                "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are set or Label Studio calls /setup",
                f" (Label Studio URL {url})" if url else "",
            )
            return
        kinds = {"legacy": "legacy token", "pat": "personal access token", "access": "access token (JWT)"}
        url_from = "LABEL_STUDIO_URL" if self._env_url else "/setup hostname"
        key_from = "LABEL_STUDIO_API_KEY" if source == "env" else "/setup access_token"
        log.info(
            "Label Studio credentials: %s (from %s), %s from %s",
            auth.base_url, url_from, kinds[auth.kind], key_from,
        )
