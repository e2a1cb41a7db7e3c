"""SSRF guard: task data is user input, so an image URL must not reach internal services.

Refused by default, after DNS resolution (a public name may point at 10.0.0.5):
loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16, fe80::/10),
carrier-grade NAT, unspecified, multicast, reserved and every other non-global address.
IPv4-mapped IPv6 (::ffff:10.0.0.1) is judged as the IPv4 address it maps.

Allowed anyway when:
* FETCH_ALLOW_PRIVATE=true (everything except cloud metadata, see below);
* the URL has Label Studio's origin as the operator set it in LABEL_STUDIO_URL (scheme, host AND
  port: another port of the same machine is another service): Label Studio is usually on a private
  network and is the one host we must reach. A hostname that only /setup named is never exempt:
  anybody who reaches the backend can call /setup;
* the host name, or an address it resolves to, matches FETCH_ALLOWLIST (comma-separated host
  names, "*.example.com" / ".example.com" suffixes, IP addresses or CIDR ranges).

Cloud metadata endpoints (169.254.169.254 and friends, metadata.google.internal) hand out cloud
credentials and are never an image source: they are refused even with FETCH_ALLOW_PRIVATE and
are only reachable if FETCH_ALLOWLIST names that exact address or host.

If a host resolves to several addresses and any one is refused, the host is refused: otherwise
an attacker's DNS could answer with a public and a private record and let the client pick.

`check_url` is called before every request and every redirect hop (for clear early errors);
the same policy is enforced again at connect time by `transport.GuardedAdapter`, on the exact
addresses the socket connects to, which closes the DNS-rebinding window (see transport.py).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..urls import Origin, origin, redact_url
from .errors import ImageError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.169.253",  # AWS VPC DNS
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "100.100.100.200",  # Alibaba Cloud
    )
)
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)


@dataclass(frozen=True)
class AddressPolicy:
    """Which destinations may be fetched. Built per request from Settings + LABEL_STUDIO_URL's origin."""

    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()  # exact names, lower case
    allowed_suffixes: tuple[str, ...] = ()  # ".example.com"
    allowed_networks: tuple[IPNetwork, ...] = ()
    trusted_origins: frozenset[Origin] = frozenset()  # LABEL_STUDIO_URL's (scheme, host, port)

    @classmethod
    def from_settings(cls, settings, trusted_origins: Iterable[Origin] = ()) -> AddressPolicy:
        hosts: set[str] = set()
        suffixes: list[str] = []
        networks: list[IPNetwork] = []
        for entry in settings.fetch_allowlist:
            entry = entry.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if entry.startswith("*."):
                suffixes.append(entry[1:])
            elif entry.startswith("."):
                suffixes.append(entry)
            else:
                hosts.add(_strip_port(entry))
        return cls(
            allow_private=settings.fetch_allow_private,
            allowed_hosts=frozenset(hosts),
            allowed_suffixes=tuple(suffixes),
            allowed_networks=tuple(networks),
            trusted_origins=frozenset(o for o in trusted_origins if o),
        )

    def host_trusted(self, host: str) -> bool:
        """Allowed by name: an allowlisted name (whatever it resolves to)."""
        host = _norm_host(host)
        return host in self.allowed_hosts or any(host.endswith(s) for s in self.allowed_suffixes)

    def origin_trusted(self, scheme: str | None, host: str, port: int | None) -> bool:
        """Label Studio's own origin (from LABEL_STUDIO_URL): scheme, host and port all match."""
        if scheme is None or port is None:
            return False
        return (scheme.lower(), _norm_host(host), port) in self.trusted_origins

    def address_problem(
        self, host: str, ip: IPAddress, *, scheme: str | None = None, port: int | None = None
    ) -> str | None:
        """Why connecting to `ip` (resolved from `host`, for scheme://host:port) is refused; None
        when it is allowed."""
        ip = _unmap(ip)
        if any(ip in net for net in self.allowed_networks):
            if ip in METADATA_ADDRESSES and not _names_exactly(self.allowed_networks, ip):
                return "a cloud metadata address"
            return None
        kind = classify(ip)
        if kind is None:
            return None
        if kind == "a cloud metadata address":
            return None if _norm_host(host) in self.allowed_hosts else kind
        if self.allow_private or self.host_trusted(host) or self.origin_trusted(scheme, host, port):
            return None
        return kind


def check_url(url: str, settings, *, trusted_urls: Iterable[str] = ()) -> None:
    """Raise ImageError("blocked_address") when `url` must not be fetched (see module docstring);
    `trusted_urls` are Label Studio's (operator-set) URLs whose exact origin is exempt."""
    origins = (o for o in (origin(u) for u in trusted_urls) if o is not None)
    check_url_with(url, AddressPolicy.from_settings(settings, origins))


def check_url_with(url: str, policy: AddressPolicy) -> None:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ImageError("unsupported_url", f"Malformed image URL {redact_url(url)}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ImageError("unsupported_url", f"Not an http(s) URL: {redact_url(url)}")
    if not host:
        raise ImageError("unsupported_url", f"The URL {redact_url(url)} has no host name")
    scheme = parts.scheme.lower()
    resolve_checked(host, port or (443 if scheme == "https" else 80), policy, url=url, scheme=scheme)


def resolve_checked(
    host: str, port: int, policy: AddressPolicy, *, url: str | None = None, scheme: str | None = None
) -> list[tuple]:
    """getaddrinfo(host, port) with every address checked; the list to connect to, in order.
    `scheme` (http/https) lets Label Studio's exact origin through; without it only the allowlist can.

    Raises ImageError("blocked_address") if any address is refused, ("connection") if the name
    does not resolve.
    """
    shown = redact_url(url) if url else host
    name = _norm_host(host)
    if name in METADATA_HOSTS and name not in policy.allowed_hosts:
        raise ImageError(
            "blocked_address", f"Refusing to fetch {shown}: {host} is a cloud metadata service, not an image source"
        )
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise ImageError("connection", f"Cannot resolve the host name {host!r} of {shown} ({exc})") from None
    seen: set[tuple] = set()
    checked: list[tuple] = []
    for family, type_, proto, _canon, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        problem = policy.address_problem(host, ip, scheme=scheme, port=port)
        if problem is not None:
            raise ImageError("blocked_address", _blocked_message(shown, host, ip, problem))
        if sockaddr not in seen:
            seen.add(sockaddr)
            checked.append((family, type_, proto, sockaddr))
    if not checked:
        raise ImageError("connection", f"The host name {host!r} of {shown} has no address")
    return checked


def classify(ip: IPAddress) -> str | None:
    """A human description of why `ip` is not a public address, None for a public one."""
    ip = _unmap(ip)
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:  # before is_private, which also covers 240/4
        return "a reserved address"
    if ip.is_private:
        return "a private network address"
    if not ip.is_global:  # carrier-grade NAT, documentation, benchmarking ranges...
        return "a special-purpose (non-public) address"
    return None


def _blocked_message(shown: str, host: str, ip: IPAddress, problem: str) -> str:
    via = "" if _norm_host(host) == str(ip) else f" ({host} resolves to {ip})"
    if problem == "a cloud metadata address":
        return f"Refusing to fetch {shown}: {ip} is {problem}{via}, never an image source"
    return (
        f"Refusing to fetch {shown}: {ip} is {problem}{via}. If this image server is trusted, add "
        f"{host} to FETCH_ALLOWLIST (or set FETCH_ALLOW_PRIVATE=true)"
    )


def _unmap(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _names_exactly(networks: tuple[IPNetwork, ...], ip: IPAddress) -> bool:
    return any(net.num_addresses == 1 and ip in net for net in networks)


def _norm_host(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


def _strip_port(entry: str) -> str:
    # "host:8080" in the allowlist: the port is not part of the decision
    if entry.count(":") == 1:
        return entry.split(":", 1)[0]
    return entry
