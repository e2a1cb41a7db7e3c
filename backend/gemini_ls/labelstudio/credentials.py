"""The Label Studio credentials in use: LABEL_STUDIO_URL + LABEL_STUDIO_API_KEY, or /setup's.

`CredentialStore` holds them. LABEL_STUDIO_URL + LABEL_STUDIO_API_KEY from the environment win;
otherwise the `hostname` and `access_token` Label Studio sends in /setup are used (that token is
always the project creator's legacy token, so it fails when legacy tokens are off).

Who may receive which key: /setup is an unauthenticated call anybody who reaches the backend can
make, so its `hostname` must never attract the operator's key. LABEL_STUDIO_API_KEY is only ever
paired with LABEL_STUDIO_URL (set without it, it is not used at all, and a warning says so); a
/setup `hostname` is only paired with the `access_token` of that same /setup.
The key itself is never logged or formatted.
"""

from __future__ import annotations

import logging
import threading

import requests

from ..urls import origin, redact_url
from .auth import LabelStudioAuth, Source

log = logging.getLogger("gemini_ls.labelstudio")


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
