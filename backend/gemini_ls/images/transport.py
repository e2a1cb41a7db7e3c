"""A requests adapter that applies the SSRF policy to the socket it actually opens.

Checking a URL and then letting requests resolve the name again leaves a DNS-rebinding window:
the first answer is public, the second (a TTL of 0 later) is 127.0.0.1. Here the connection class
resolves the name once, checks every address with `ssrf.resolve_checked`, and connects to those
checked addresses only. TLS is unaffected: urllib3 still wraps the socket with the original host
name for SNI and certificate verification, because only the low-level socket creation changes.

The policy is fetched per connection through a callable, so a Label Studio host learned later via
/setup is honoured without rebuilding the session. Environment proxies are not used (the session
is created with trust_env=False): through a proxy the policy would judge the proxy's address.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as u3conn

from .errors import ImageError
from .ssrf import AddressPolicy, resolve_checked

PolicySource = Callable[[], AddressPolicy]


def _guarded_new_conn(self) -> socket.socket:
    """Replacement for urllib3's HTTPConnection._new_conn: resolve, check, connect to what was checked."""
    addresses = resolve_checked(self._dns_host, self.port, self._policy_source())
    last_error: OSError | None = None
    for _family, _type, _proto, sockaddr in addresses:
        try:
            # An IP literal: create_connection's own getaddrinfo returns it unchanged, no new lookup.
            return u3conn.create_connection(
                (sockaddr[0], sockaddr[1]),
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from exc
        except OSError as exc:
            last_error = exc
    raise NewConnectionError(self, f"Failed to establish a new connection: {last_error}")


class GuardedAdapter(HTTPAdapter):
    """Mount on http:// and https:// of a session used for untrusted URLs."""

    def __init__(self, policy_source: PolicySource, **kwargs) -> None:
        self._policy_source = policy_source
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        source = self._policy_source
        http_conn = type("GuardedHTTPConnection", (HTTPConnection,), {
            "_new_conn": _guarded_new_conn, "_policy_source": staticmethod(source)})
        https_conn = type("GuardedHTTPSConnection", (HTTPSConnection,), {
            "_new_conn": _guarded_new_conn, "_policy_source": staticmethod(source)})
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
