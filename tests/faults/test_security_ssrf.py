"""Server-side request forgery: task data is user input, its image URLs must not reach internal
services. Only addresses on this machine are ever contacted: the `net_fence` fixture
(tests/faults/fence.py) refuses, records and fails any connect or DNS lookup that would leave
loopback, which is how "refused WITHOUT connecting" is asserted for 169.254.169.254 and friends.

FETCH_ALLOWLIST=None removes the test default (which allowlists loopback) so the guard runs with
the backend's own defaults.
"""

from __future__ import annotations

import pytest

from tests.faults.common import assert_good, check_contract, good_task, png, predict, url_task

DEFAULTS = {"FETCH_ALLOWLIST": None, "FETCH_ALLOW_PRIVATE": None}


def _blocked(backend, caplog, entry, task_id, *words):
    return check_contract(backend, caplog, entry, task_id, "image_blocked_address", "refusing to fetch", *words)


def test_loopback_is_refused_by_default_and_never_contacted(backend_factory, emu, image_server, gemini_logs):
    backend = backend_factory(**DEFAULTS)
    by_ip = image_server.add("/a.png", png(1))
    by_name = by_ip.replace("127.0.0.1", "localhost")
    bad_ip, bad_name, good = predict(backend, [url_task(1, by_ip), url_task(2, by_name), good_task(3)])
    _blocked(backend, gemini_logs, bad_ip, 1, "loopback", "FETCH_ALLOWLIST")
    _blocked(backend, gemini_logs, bad_name, 2, "localhost resolves to 127.0.0.1")  # checked after DNS
    assert_good(good, 3)
    assert image_server.hits("/a.png") == 0


@pytest.mark.parametrize(
    "env",
    [
        {"FETCH_ALLOWLIST": "127.0.0.1"},
        {"FETCH_ALLOWLIST": "127.0.0.0/8"},
        {"FETCH_ALLOWLIST": "example.org,localhost"},
        {"FETCH_ALLOWLIST": None, "FETCH_ALLOW_PRIVATE": "true"},
    ],
    ids=["ip", "cidr", "name", "allow_private"],
)
def test_allowlist_lets_a_trusted_local_server_in(env, backend_factory, emu, image_server):
    backend = backend_factory(**env)
    url = image_server.add("/a.png", png(1))
    if "localhost" in (env.get("FETCH_ALLOWLIST") or ""):
        url = url.replace("127.0.0.1", "localhost")
    (entry,) = predict(backend, [url_task(1, url)])
    assert_good(entry, 1)
    assert image_server.hits("/a.png") == 1


def test_redirect_from_an_allowed_host_to_a_refused_one_is_refused(backend_factory, emu, image_server, gemini_logs):
    """localhost is allowlisted by name; it redirects to 127.0.0.1, which is not: refused at the hop."""
    backend = backend_factory(FETCH_ALLOWLIST="localhost", FETCH_ALLOW_PRIVATE=None)
    image_server.add("/secret.png", png(1))
    start = image_server.redirect("/go.png", image_server.url("/secret.png")).replace("127.0.0.1", "localhost")
    bad, good = predict(backend, [url_task(1, start), good_task(2)])
    _blocked(backend, gemini_logs, bad, 1, "127.0.0.1", "loopback")
    assert_good(good, 2)
    assert image_server.hits("/go.png") == 1
    assert image_server.hits("/secret.png") == 0


def test_redirect_to_cloud_metadata_is_refused_without_connecting(backend_factory, emu, image_server, gemini_logs, net_fence):
    backend = backend_factory(FETCH_ALLOWLIST="127.0.0.1", FETCH_ALLOW_PRIVATE="true")
    start = image_server.redirect("/img.png", "http://169.254.169.254/latest/meta-data/iam/security-credentials/")
    bad, good = predict(backend, [url_task(1, start), good_task(2)])
    _blocked(backend, gemini_logs, bad, 1, "169.254.169.254", "metadata")
    assert_good(good, 2)
    assert image_server.hits("/img.png") == 1
    assert net_fence.targets() == []


METADATA = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254:80/computeMetadata/v1/instance/service-accounts/default/token",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata.google.internal./computeMetadata/v1/",
    "http://METADATA.GOOGLE.INTERNAL/computeMetadata/v1/",
    "http://metadata/computeMetadata/v1/",
    "http://169.254.170.2/v2/credentials/x",
    "http://100.100.100.200/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/latest/meta-data/",
]
PRIVATE = [
    "http://10.0.0.1/a.png",
    "http://192.168.1.10/a.png",
    "http://172.16.5.4/a.png",
    "http://169.254.10.20/a.png",  # link-local
    "http://[fe80::1]/a.png",
    "http://0.0.0.0/a.png",
    "http://100.64.0.1/a.png",  # carrier-grade NAT
]


@pytest.mark.parametrize("allow_private", [False, True], ids=["default", "FETCH_ALLOW_PRIVATE"])
def test_cloud_metadata_is_refused_without_connecting(allow_private, backend_factory, emu, gemini_logs, net_fence):
    """Even with FETCH_ALLOW_PRIVATE=true: refused before any DNS lookup or connect."""
    backend = backend_factory(FETCH_ALLOWLIST=None, FETCH_ALLOW_PRIVATE="true" if allow_private else None)
    tasks = [url_task(i, url) for i, url in enumerate(METADATA, start=1)] + [good_task(99)]
    results = predict(backend, tasks)
    for i, entry in enumerate(results[:-1], start=1):
        _blocked(backend, gemini_logs, entry, i, "metadata")
    assert_good(results[-1], 99)
    assert net_fence.targets() == [], f"tried to reach {net_fence.targets()}"


def test_private_and_link_local_addresses_are_refused_without_connecting(backend_factory, emu, gemini_logs, net_fence):
    backend = backend_factory(**DEFAULTS)
    tasks = [url_task(i, url) for i, url in enumerate(PRIVATE, start=1)] + [good_task(99)]
    results = predict(backend, tasks)
    for i, entry in enumerate(results[:-1], start=1):
        _blocked(backend, gemini_logs, entry, i)
    assert_good(results[-1], 99)
    assert net_fence.targets() == [], f"tried to reach {net_fence.targets()}"


def test_label_studio_own_host_is_allowed_and_nothing_else(backend_factory, emu, image_server, gemini_logs):
    """LABEL_STUDIO_URL is on a private/loopback address: its images are fetched; another local
    origin still is not."""
    backend = backend_factory(
        LABEL_STUDIO_URL=image_server.base_url, LABEL_STUDIO_API_KEY="lstoken0123456789abcdef", **DEFAULTS
    )
    image_server.add("/data/upload/3/a.png", png(1))
    image_server.add("/b.png", png(2))
    other = image_server.add("/c.png", png(3)).replace("127.0.0.1", "localhost")
    rel, absolute, elsewhere = predict(
        backend, [url_task(1, "/data/upload/3/a.png"), url_task(2, image_server.url("/b.png")), url_task(3, other)]
    )
    assert_good(rel, 1)
    assert_good(absolute, 2)
    _blocked(backend, gemini_logs, elsewhere, 3, "loopback")
    assert image_server.hits("/c.png") == 0


@pytest.mark.parametrize(
    "url, words",
    [
        ("file:///etc/passwd", "not supported"),
        ("ftp://127.0.0.1/a.png", "not supported"),
        ("gopher://127.0.0.1:6379/_INFO", "not supported"),
        ("s3://bucket/key.png", "cloud storage"),
    ],
)
def test_non_http_schemes_are_refused(url, words, backend_factory, emu, gemini_logs):
    backend = backend_factory(**DEFAULTS)
    bad, good = predict(backend, [url_task(1, url), good_task(2)])
    check_contract(backend, gemini_logs, bad, 1, "image_unsupported_url", words)
    assert_good(good, 2)
