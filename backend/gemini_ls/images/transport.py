"""A requests adapter that applies the SSRF policy to the socket it actually opens.

Checking a URL and then letting requests resolve the name again leaves a DNS-rebinding window:
the first answer is public, the second (a TTL of 0 later) is 127.0.0.1. Here the connection class
resolves the name once, checks every address with `ssrf.resolve_checked`, and connects to those
checked addresses only. TLS is unaffected: urllib3 still wraps the socket with the original host
name for SNI and certificate verification, because only the low-level socket creation changes.

The policy is fetched per connection through a callable, so a change of the credentials is
honoured without rebuilding the session. Environment proxies are not used (the session is created
with trust_env=False): through a proxy the policy would judge the proxy's address.

`WallClock` makes IMAGE_FETCH_TIMEOUT a real wall clock. Socket timeouts bound each read, not the
sum: a server that sends one header line every 0.5 s never trips a read timeout, and urllib3 parses
the headers in one blocking call we cannot interrupt between lines. So every socket a fetch uses
(new or taken from the pool) is registered with that fetch's WallClock, and when the deadline
passes a timer shuts those sockets down: the blocked read returns at once and the fetcher reports
a timeout (it asks `expired`, never trusting a read that ended because of the shutdown).
"""

from __future__ import annotations

import contextvars
import socket
import threading
import time
from collections.abc import Callable

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as u3conn

from .errors import ImageError
from .ssrf import AddressPolicy, resolve_checked

PolicySource = Callable[[], AddressPolicy]

_CLOCK: contextvars.ContextVar[WallClock | None] = contextvars.ContextVar("gemini_ls_fetch_clock", default=None)


class WallClock:
    """The deadline of one fetch, enforced on its sockets (see the module docstring).

        with WallClock(deadline) as clock:   # deadline on time.monotonic()
            session.get(...)                 # every socket used in here is shut at the deadline
            ...                              # clock.expired: the deadline cut the fetch short
    """

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._expire)
        self._timer.daemon = True
        self._token: contextvars.Token | None = None

    @property
    def expired(self) -> bool:
        with self._lock:
            return self._expired or time.monotonic() >= self.deadline

    def __enter__(self) -> WallClock:
        self._token = _CLOCK.set(self)
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        if self._token is not None:
            _CLOCK.reset(self._token)
        with self._lock:
            self._sockets.clear()

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if not self._expired:
                self._sockets.append(sock)
                return
        _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked recv; the pool drops the dead connection
    except OSError:
        pass  # already closed


def _watch(sock: socket.socket | None) -> None:
    clock = _CLOCK.get()
    if clock is not None:
        clock.watch(sock)


def _guarded_new_conn(self) -> socket.socket:
    """Replacement for urllib3's HTTPConnection._new_conn: resolve, check, connect to what was checked."""
    addresses = resolve_checked(self._dns_host, self.port, self._policy_source(), scheme=self._scheme)
    last_error: OSError | None = None
    for _family, _type, _proto, sockaddr in addresses:
        try:
            # An IP literal: create_connection's own getaddrinfo returns it unchanged, no new lookup.
            sock = u3conn.create_connection(
                (sockaddr[0], sockaddr[1]),
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
            _watch(sock)
            return sock
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from exc
        except OSError as exc:
            last_error = exc
    raise NewConnectionError(self, f"Failed to establish a new connection: {last_error}")


def _make_getresponse(base: type[HTTPConnection]):
    def getresponse(self):
        _watch(self.sock)  # a pooled connection was registered by an earlier fetch's clock, not this one
        return base.getresponse(self)

    return getresponse


class GuardedAdapter(HTTPAdapter):
    """Mount on http:// and https:// of a session used for untrusted URLs."""

    def __init__(self, policy_source: PolicySource, **kwargs) -> None:
        self._policy_source = policy_source
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        source = self._policy_source
        http_conn = type("GuardedHTTPConnection", (HTTPConnection,), {
            "_new_conn": _guarded_new_conn, "_policy_source": staticmethod(source), "_scheme": "http",
            "getresponse": _make_getresponse(HTTPConnection)})
        https_conn = type("GuardedHTTPSConnection", (HTTPSConnection,), {
            "_new_conn": _guarded_new_conn, "_policy_source": staticmethod(source), "_scheme": "https",
            "getresponse": _make_getresponse(HTTPSConnection)})
        # Per-PoolManager table (urllib3 copies nothing global when we assign a new dict here).
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn}),
            "https": type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn}),
        }

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        # The fetcher always passes proxies=None; reaching this means someone configured one anyway.
        raise ImageError(
            "unsupported_url", "Image downloads through an HTTP proxy are not supported (the SSRF guard "
            "would judge the proxy's address instead of the image server's)"
        )
