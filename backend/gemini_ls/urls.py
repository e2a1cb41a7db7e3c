"""Small, pure URL helpers shared by the image fetcher, the SSRF guard and the Label Studio credentials."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters whose values are Label Studio file paths, not secrets: showing them helps the
# user find the file (/data/local-files/?d=images/1.jpg, /storage-data/uploaded/?filepath=...).
_PUBLIC_QUERY_KEYS = frozenset({"d", "filepath"})

_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]  # (scheme, lower-case host, port)


def redact_url(url: str) -> str:
    """`url` fit for a log line or an error message.

    Drops user:password@, the fragment and every query value except Label Studio's own file-path
    parameters: presigned URLs carry signatures and tokens in the query string.
    A data: URI is reduced to its media type and length.
    """
    if url.startswith("data:"):
        head = url[5:].split(",", 1)[0][:60]
        return f"data:{head},… ({len(url)} characters)"
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if ":" in netloc:  # IPv6 literal
            netloc = f"[{netloc}]"
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
    except ValueError:
        return url.split("?", 1)[0][:200]
    query = ""
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = urlencode(
            [(k, v if k in _PUBLIC_QUERY_KEYS else "***") for k, v in pairs], safe="/*"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def origin(url: str) -> Origin | None:
    """(scheme, lower-case host, port) of an http(s) URL, None for anything else or garbage."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host or port is None:
        return None
    return scheme, host, port


def host_of(url: str) -> str | None:
    """The lower-case host name of an http(s) URL (no port), None when there is none."""
    o = origin(url)
    return o[1] if o else None
