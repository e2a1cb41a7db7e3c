"""Download a task's image: `ImageFetcher(settings, credentials, metrics).fetch(url) -> bytes`.

Accepted image references (as they appear in Label Studio task data):

* `/data/upload/<project>/<file>`, `upload/...`, `/data/local-files/?d=...` and any other relative
  path: resolved against Label Studio's URL (LABEL_STUDIO_URL or /setup's hostname) and fetched
  with Label Studio's Authorization header. Like label-studio-sdk we join by concatenation, so a
  Label Studio served under a sub-path (http://host/ls) keeps it;
* full http(s) URLs: the Authorization header is sent only when the URL has Label Studio's exact
  origin (scheme, host, port), never to another host, including after a redirect;
* `data:` URIs (base64 or percent-encoded).

Anything else (s3://, gs://, azure-blob://, file://, ftp://...) is refused with a message naming the
scheme: reading cloud storage would need Label Studio's presign endpoint per task, and file:// would
let task data read this server's disk.

Every request and redirect hop goes through the SSRF guard (ssrf.py, transport.py). The body is
streamed: Content-Length is checked first, then bytes are counted as they arrive and the download
is abandoned as soon as IMAGE_MAX_DOWNLOAD_BYTES is passed. IMAGE_FETCH_TIMEOUT bounds the whole
fetch (connect, every hop's headers, the body) as a wall-clock deadline: checked between reads,
and enforced on the sockets themselves by `transport.WallClock`, so neither a stalled server nor
one trickling its headers or body a byte at a time can hold a worker past it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from typing import Any
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

import requests
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

from ..labelstudio.auth import LabelStudioAuth
from ..labelstudio.credentials import CredentialStore
from ..labelstudio.errors import LabelStudioAuthError
from ..urls import origin, redact_url
from .errors import ImageError, Reason
from .ssrf import AddressPolicy, check_url_with
from .transport import GuardedAdapter, WallClock

log = logging.getLogger("gemini_ls.images")

MAX_REDIRECTS = 5
CHUNK = 64 * 1024
CONNECT_TIMEOUT = 10.0  # a TCP handshake that takes longer is not going to deliver an image
USER_AGENT = "gemini-ls (Label Studio ML backend)"
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")
_REDIRECTS = (301, 302, 303, 307, 308)
_NO_PROXIES: dict[str, Any] = {"http": None, "https": None, "all": None}  # overrides HTTP(S)_PROXY from the environment


class ImageFetcher:
    def __init__(self, settings, credentials: CredentialStore, metrics=None, session: requests.Session | None = None):
        self._settings = settings
        self._credentials = credentials
        self._metrics = metrics
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no .netrc credentials, no environment proxies
        # Mounted once, before the fetcher is shared between threads.
        adapter = GuardedAdapter(self._policy)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self._session = session

    def fetch(self, url: str, *, task_id: int | str | None = None) -> bytes:
        """The image's bytes; raises ImageError (counted in metrics by reason) on any failure."""
        try:
            return self._fetch(url)
        except ImageError as exc:
            if self._metrics is not None:
                self._metrics.image_fetch_errors.labels(reason=exc.reason).inc()
            log.info("Image fetch failed%s: %s", f" (task {task_id})" if task_id is not None else "", exc)
            raise

    # -- resolution -----------------------------------------------------------------------------

    def _fetch(self, url: str) -> bytes:
        if not isinstance(url, str):
            raise ImageError("unsupported_url", f"The task's image value is not a URL (got {type(url).__name__})")
        if not url.strip():
            raise ImageError("unsupported_url", "The task has no image URL (empty value)")
        url = url.strip()
        match = _SCHEME.match(url)
        scheme = match.group(1).lower() if match else None
        if scheme == "data":
            return decode_data_uri(url, self._settings.image_max_download_bytes)
        if scheme in ("http", "https"):
            return self._download(url)
        if scheme is not None and not url.startswith("//"):
            raise ImageError("unsupported_url", _scheme_message(scheme, url))
        return self._download(self._resolve_relative(url))

    def _resolve_relative(self, path: str) -> str:
        base = self._credentials.base_url
        if base is None:
            raise ImageError(
                "unsupported_url",
                f"The image {redact_url(path)} is a Label Studio path, but Label Studio's URL is unknown: "
                "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY on the ML backend (or reconnect the model in "
                "Label Studio so that it calls /setup)",
            )
        if path.startswith("//"):  # protocol-relative: Label Studio's scheme
            return urlsplit(base).scheme + ":" + path
        if path.startswith(("upload/", "/upload/")):  # raw upload keys, as label-studio-sdk accepts them
            path = "/data/" + path.lstrip("/")
        return base.rstrip("/") + "/" + path.lstrip("/")

    # -- download -------------------------------------------------------------------------------

    def _policy(self) -> AddressPolicy:
        trusted = self._credentials.trusted_origin  # LABEL_STUDIO_URL only, never a /setup hostname
        return AddressPolicy.from_settings(self._settings, (trusted,) if trusted else ())

    def _check(self, url: str) -> None:
        try:
            check_url_with(url, self._policy())
        except ImageError as exc:
            base = self._credentials.base_url
            if exc.reason != "blocked_address" or not self._credentials.from_setup or origin(base or "") != origin(url):
                raise
            raise ImageError(
                "blocked_address",
                f"{exc}. Label Studio's address {redact_url(base or '')} came from /setup, which anybody can "
                "call, so it cannot unlock a private address: set LABEL_STUDIO_URL on the ML backend",
            ) from None

    def _download(self, url: str) -> bytes:
        with WallClock(time.monotonic() + self._settings.image_fetch_timeout) as clock:
            try:
                return self._download_within(url, clock)
            except ImageError as exc:
                if clock.expired and exc.reason != "timeout":  # the socket was shut by the wall clock
                    raise _timeout(url, self._settings.image_fetch_timeout) from None
                raise

    def _download_within(self, url: str, clock: WallClock) -> bytes:
        deadline = clock.deadline
        seen: set[str] = set()
        current = url
        retried_auth = False
        hops = 0
        while True:
            seen.add(current)
            self._check(current)
            auth = self._credentials.current()
            base = self._credentials.base_url
            ls_target = base is not None and origin(base) == origin(current)
            headers = {"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.5"}
            if auth is not None and auth.owns(current):  # the only place a credential is attached
                try:
                    headers.update(auth.headers())
                except LabelStudioAuthError as exc:  # a personal access token that cannot be refreshed
                    raise ImageError(exc.reason, exc.message) from None
            resp = self._get(current, headers, deadline)
            try:
                status = resp.status_code
                if status in _REDIRECTS:
                    target = self._redirect_target(current, resp, seen, hops)
                    hops += 1
                    current = target
                    continue
                if status == 401 and ls_target and auth is not None and auth.kind == "pat" and not retried_auth:
                    # The cached access token may have been revoked or the clocks disagree: one fresh try.
                    auth.invalidate()
                    retried_auth = True
                    continue
                if not 200 <= status < 300:
                    raise _status_error(status, resp.reason, current, ls_target, auth, base)
                body = self._read_body(resp, current, deadline)
                if clock.expired:  # a shut socket ends a close-delimited body like a real EOF would
                    raise _timeout(current, self._settings.image_fetch_timeout)
                return body
            finally:
                resp.close()

    def _redirect_target(self, current: str, resp: requests.Response, seen: set[str], hops: int) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise ImageError("http_error", f"HTTP {resp.status_code} redirect without a Location from {redact_url(current)}")
        target = urljoin(current, location.strip())
        if target in seen:
            raise ImageError("redirect_loop", f"Redirect loop: {redact_url(current)} redirects back to {redact_url(target)}")
        if hops + 1 > MAX_REDIRECTS:
            raise ImageError(
                "redirect_loop",
                f"Too many redirects (more than {MAX_REDIRECTS}) starting from the image URL; last {redact_url(target)}",
            )
        scheme = urlsplit(target).scheme.lower()
        if scheme not in ("http", "https"):
            raise ImageError("unsupported_url", f"{redact_url(current)} redirects to a {scheme}: URL, which cannot be fetched")
        return target

    def _get(self, url: str, headers: dict[str, str], deadline: float) -> requests.Response:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _timeout(url, self._settings.image_fetch_timeout)
        try:
            return self._session.get(
                url,
                headers=headers,
                stream=True,
                allow_redirects=False,
                proxies=_NO_PROXIES,
                timeout=(min(CONNECT_TIMEOUT, remaining), remaining),
            )
        except ImageError:
            raise
        except requests.Timeout:
            raise _timeout(url, self._settings.image_fetch_timeout) from None
        except requests.exceptions.SSLError as exc:
            raise ImageError("connection", f"TLS error talking to {redact_url(url)}: {_short(exc)}") from None
        except requests.ConnectionError as exc:
            raise ImageError("connection", f"Cannot connect to {redact_url(url)}: {_short(exc)}") from None
        except requests.RequestException as exc:
            raise ImageError("unsupported_url", f"Invalid image URL {redact_url(url)}: {type(exc).__name__}") from None

    def _read_body(self, resp: requests.Response, url: str, deadline: float) -> bytes:
        cap = self._settings.image_max_download_bytes
        declared = resp.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > cap:
            raise _too_large(url, f"{int(declared):,} bytes", cap)
        body = bytearray()
        while True:
            if time.monotonic() > deadline:
                raise _timeout(url, self._settings.image_fetch_timeout)
            try:
                # read1: at most one socket read, so a trickling server cannot keep us past the deadline
                chunk = resp.raw.read1(CHUNK, decode_content=True)
            except ReadTimeoutError:
                raise _timeout(url, self._settings.image_fetch_timeout) from None
            except DecodeError:
                raise ImageError("corrupt", f"The server sent a badly compressed body for {redact_url(url)}") from None
            except (ProtocolError, OSError) as exc:
                raise ImageError("connection", f"The download of {redact_url(url)} broke off: {_short(exc)}") from None
            if not chunk:
                break
            body += chunk
            if len(body) > cap:
                raise _too_large(url, f"more than {cap:,} bytes", cap)
        if not body:
            raise ImageError("empty", f"The server returned an empty file (0 bytes) for {redact_url(url)}")
        return bytes(body)


def decode_data_uri(url: str, max_bytes: int) -> bytes:
    """The bytes of a `data:[<media type>][;base64],<data>` URI."""
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise ImageError("unsupported_url", "Malformed data: URI (no comma between the header and the data)")
    if header.lower().endswith(";base64"):
        compact = re.sub(rb"\s+", b"", unquote_to_bytes(payload))
        if len(compact) * 3 // 4 > max_bytes:
            raise _too_large("data: URI", f"about {len(compact) * 3 // 4:,} bytes", max_bytes)
        compact += b"=" * (-len(compact) % 4)
        try:
            data = base64.b64decode(compact, altchars=b"-_" if (b"-" in compact or b"_" in compact) else None, validate=True)
        except (binascii.Error, ValueError):
            raise ImageError("corrupt", "The data: URI's base64 content is invalid") from None
    else:
        data = unquote_to_bytes(payload)
        if len(data) > max_bytes:
            raise _too_large("data: URI", f"{len(data):,} bytes", max_bytes)
    if not data:
        raise ImageError("empty", "The data: URI holds no data (0 bytes)")
    return data


def _status_error(status: int, reason: str | None, url: str, is_ls: bool, auth: LabelStudioAuth | None, ls_base: str | None) -> ImageError:
    shown = redact_url(url)
    label = f"HTTP {status}{' ' + reason if reason else ''}"
    if status == 404:
        hint = (f" (deleted from Label Studio, or the task comes from another Label Studio instance than {ls_base})") if is_ls else ""
        return ImageError("not_found", f"Image not found ({label}) at {shown}{hint}")
    if status in (401, 403):
        word: Reason = "unauthorized" if status == 401 else "forbidden"
        if is_ls:
            return ImageError(word, f"Label Studio refused the image download ({label}) for {shown}: {_auth_hint(auth)}")
        return ImageError(
            word,
            f"The image server refused access ({label}) to {shown}. It needs credentials; the ML backend "
            "only sends credentials to Label Studio itself, so use a public or presigned URL",
        )
    return ImageError("http_error", f"Image download failed with {label} at {shown}")


def _auth_hint(auth: LabelStudioAuth | None) -> str:
    if auth is None:
        return (
            "no API key is configured: set LABEL_STUDIO_API_KEY on the ML backend to a personal access token "
            "(Account & Settings in Label Studio)"
        )
    if auth.source == "setup":
        return (
            "the backend is using the token Label Studio sent in /setup (the project creator's legacy token), "
            "which stops working when legacy tokens are disabled; set LABEL_STUDIO_API_KEY to a personal access token"
        )
    if auth.kind == "legacy":
        return (
            "LABEL_STUDIO_API_KEY is a legacy token; Label Studio 1.23 disables legacy tokens for new "
            "organizations. Use a personal access token, or enable legacy tokens in the organization settings"
        )
    if auth.kind == "access":
        return (
            "LABEL_STUDIO_API_KEY is a short-lived access token (it expires after 5 minutes); use the personal "
            "access token itself, the backend refreshes it"
        )
    return "the personal access token's user may not have access to this project"


def _scheme_message(scheme: str, url: str) -> str:
    where = "this server's disk" if scheme == "file" else "there"
    if scheme in ("s3", "gs", "azure-blob", "gcs", "azure"):
        return (
            f"Image URL scheme '{scheme}://' is not supported ({redact_url(url)}): the ML backend cannot read "
            "cloud storage directly. Use http(s) or presigned URLs in the task data, or import files into Label Studio"
        )
    return (
        f"Image URL scheme '{scheme}:' is not supported ({redact_url(url)}); the ML backend cannot read {where}. "
        "Use an http(s) URL, a Label Studio upload (/data/upload/...), a local file (/data/local-files/?d=...) "
        "or a data: URI"
    )


def _too_large(url: str, size: str, cap: int) -> ImageError:
    shown = url if url == "data: URI" else redact_url(url)
    return ImageError("too_large", f"The image at {shown} is {size}, above IMAGE_MAX_DOWNLOAD_BYTES={cap:,}")


def _timeout(url: str, limit: float) -> ImageError:
    return ImageError("timeout", f"Downloading {redact_url(url)} took longer than IMAGE_FETCH_TIMEOUT={limit:g} s")


def _short(exc: BaseException) -> str:
    # requests' messages nest urllib3's repr of the pool; keep the innermost, human part, no URL query
    text = str(exc)
    for marker in ("Caused by ", "Failed to establish a new connection: "):
        if marker in text:
            text = text.split(marker, 1)[1]
    text = re.sub(r"\?[^\s'\")]*", "?…", text)  # a query string may hold a signature
    return text.strip(" ()'\"")[:200] or type(exc).__name__
