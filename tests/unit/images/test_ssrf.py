"""SSRF guard: only addresses on this machine (and never-connected ones) are used."""

from __future__ import annotations

import ipaddress
import time

import pytest
import requests

from gemini_ls.images.errors import ImageError
from gemini_ls.images.fetch import ImageFetcher
from gemini_ls.images.ssrf import AddressPolicy, check_url, classify
from gemini_ls.images.transport import GuardedAdapter
from gemini_ls.labelstudio import CredentialStore
from gemini_ls.metrics import Metrics
from gemini_ls.settings import Settings

PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 64


def blocked(url: str, settings: Settings, **kw) -> ImageError:
    with pytest.raises(ImageError) as e:
        check_url(url, settings, **kw)
    assert e.value.reason == "blocked_address"
    return e.value


@pytest.mark.parametrize(
    "ip,kind",
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6 judged as IPv4
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "special-purpose"),
        ("8.8.8.8", None),
        ("2001:4860:4860::8888", None),
    ],
)
def test_classify(ip, kind):
    got = classify(ipaddress.ip_address(ip))
    assert (got is None) if kind is None else (kind in got)


def test_loopback_blocked_by_default_with_a_helpful_message():
    err = blocked("http://127.0.0.1:8080/a.png?token=SECRET", Settings())
    assert "loopback" in str(err) and "FETCH_ALLOWLIST" in str(err)
    assert "SECRET" not in str(err)
    err = blocked("http://localhost:8080/a.png", Settings())
    assert "localhost resolves to" in str(err)


@pytest.mark.parametrize("entry", ["127.0.0.1", "127.0.0.0/8", "localhost", "LOCALHOST:8080"])
def test_allowlist_entries(entry):
    settings = Settings(fetch_allowlist=(entry,))
    url = "http://localhost:8080/a.png" if "localhost" in entry.lower() else "http://127.0.0.1:8080/a.png"
    check_url(url, settings)  # no exception


def test_wildcard_allowlist_matches_subdomains_only():
    policy = AddressPolicy.from_settings(Settings(fetch_allowlist=("*.example.internal", ".corp")))
    assert policy.host_trusted("img.example.internal") and policy.host_trusted("a.b.corp")
    assert not policy.host_trusted("example.internal.evil.com")


def test_label_studio_origin_and_allow_private():
    ls = ("http://127.0.0.1:8080",)
    check_url("http://127.0.0.1:8080/data/upload/1/a.png", Settings(), trusted_urls=ls)
    check_url("http://127.0.0.1:8080/a.png", Settings(fetch_allow_private=True))
    blocked("http://127.0.0.1:8080/a.png", Settings(), trusted_urls=("http://ls.example.com",))
    # the origin, not the host: another port or scheme of Label Studio's machine is another service
    blocked("http://127.0.0.1:8081/internal-admin", Settings(), trusted_urls=ls)
    blocked("https://127.0.0.1:8080/a.png", Settings(), trusted_urls=ls)


def test_metadata_refused_even_with_allow_private_and_without_connecting():
    start = time.monotonic()
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
                "http://metadata.google.internal/computeMetadata/v1/"):
        err = blocked(url, Settings(fetch_allow_private=True))
        assert "metadata" in str(err)
    # and through the fetcher: refused before any socket is opened (a connect attempt would end in
    # "connection" or "timeout", not "blocked_address", and take far longer)
    metrics = Metrics()
    fetcher = ImageFetcher(Settings(fetch_allow_private=True, image_fetch_timeout=20), CredentialStore(), metrics)
    with pytest.raises(ImageError) as e:
        fetcher.fetch("http://169.254.169.254/latest/meta-data/iam/security-credentials/")
    assert e.value.reason == "blocked_address"
    assert time.monotonic() - start < 1.0
    assert metrics.image_fetch_errors.labels(reason="blocked_address")._value.get() == 1
    # an explicit, exact allowlist entry is the only way in
    check_url("http://169.254.169.254/", Settings(fetch_allowlist=("169.254.169.254",)))
    blocked("http://169.254.169.254/", Settings(fetch_allowlist=("169.254.0.0/16",)))


def test_non_http_schemes_are_not_urls_to_check():
    with pytest.raises(ImageError) as e:
        check_url("file:///etc/passwd", Settings())
    assert e.value.reason == "unsupported_url"


def test_redirect_from_allowed_host_to_blocked_one_is_refused(image_server):
    # The server listens on 127.0.0.1; "localhost" is allowlisted by name, the literal IP is not.
    image_server.add("/secret.png", PNG)
    port = image_server.port
    image_server.redirect("/hop.png", f"http://127.0.0.1:{port}/secret.png")
    image_server.redirect("/meta.png", "http://169.254.169.254/latest/meta-data/")
    fetcher = ImageFetcher(Settings(fetch_allowlist=("localhost",), image_fetch_timeout=5), CredentialStore(), Metrics())
    with pytest.raises(ImageError) as e:
        fetcher.fetch(f"http://localhost:{port}/hop.png")
    assert e.value.reason == "blocked_address" and "127.0.0.1" in str(e.value)
    assert image_server.hits("/hop.png") == 1 and image_server.hits("/secret.png") == 0
    with pytest.raises(ImageError) as e:
        fetcher.fetch(f"http://localhost:{port}/meta.png")
    assert e.value.reason == "blocked_address"
    # sanity: the allowed name itself works
    assert fetcher.fetch(f"http://localhost:{port}/secret.png") == PNG


def test_policy_is_enforced_at_connect_time_too(image_server):
    """The adapter checks the addresses it connects to, so a URL that skipped check_url (or a name
    whose DNS answer changed after it) still cannot reach a blocked address."""
    image_server.add("/a.png", PNG)
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", GuardedAdapter(lambda: AddressPolicy.from_settings(Settings())))
    with pytest.raises(ImageError) as e:
        session.get(image_server.url("/a.png"), timeout=5)
    assert e.value.reason == "blocked_address"
    assert image_server.hits("/a.png") == 0
    allowed = requests.Session()
    allowed.trust_env = False
    allowed.mount("http://", GuardedAdapter(lambda: AddressPolicy.from_settings(Settings(fetch_allowlist=("127.0.0.1",)))))
    assert allowed.get(image_server.url("/a.png"), timeout=5).content == PNG
