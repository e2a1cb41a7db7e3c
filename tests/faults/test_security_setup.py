"""/setup is an unauthenticated call: whoever reaches the backend can name any `hostname` in it.
Neither the operator's Label Studio key nor the SSRF guard may be steered through it, and trust
in Label Studio's address is trust in its origin (scheme, host, port), not in a host name.

Every server here is a real loopback HTTP server (127.0.0.0/8 only; the network fence of
conftest.py refuses anything else).
"""

from __future__ import annotations

import logging

import pytest

from tests.faults.common import CONFIG, assert_good, check_contract, good_task, png, predict, url_task
from tests.fixtures.servers import ImageServer

ENV_KEY = "operator-ls-key-0123456789abcdef"
SETUP_TOKEN = "setup-token-0123456789abcdef"
GUARD_DEFAULTS = {"FETCH_ALLOWLIST": None, "FETCH_ALLOW_PRIVATE": None}


@pytest.fixture
def other_host():
    """A second web server on another loopback address (127.0.0.6): "some host" an attacker names."""
    with ImageServer("127.0.0.6") as server:
        yield server


def _setup(backend, hostname: str, token: str | None = None):
    body = {"project": "1.1", "schema": CONFIG, "hostname": hostname}
    if token is not None:
        body["access_token"] = token
    return backend.post("/setup", body)


def test_env_key_is_never_sent_to_a_host_named_by_setup(backend_factory, emu, other_host, caplog):
    """LABEL_STUDIO_API_KEY set, LABEL_STUDIO_URL not: a /setup naming any host (no token) must not
    make the next /predict send the env key there (case 1). The host is reachable here (loopback is
    allowlisted in the test environment), so only the credential rule can keep the key home."""
    caplog.set_level(logging.WARNING, logger="gemini_ls")
    backend = backend_factory(LABEL_STUDIO_API_KEY=ENV_KEY, FETCH_ALLOWLIST="127.0.0.0/8")
    other_host.add("/data/upload/1/x.png", png(1))
    assert _setup(backend, other_host.base_url).status_code == 200
    (entry,) = predict(backend, [url_task(1, "/data/upload/1/x.png")])
    assert_good(entry, 1)  # fetched: the host is allowlisted, but without any credential
    (sent,) = other_host.requests("/data/upload/1/x.png")
    assert "authorization" not in sent.headers, sent.headers
    # a /setup hostname is paired with the token of that same /setup, and only with it
    assert _setup(backend, other_host.base_url, SETUP_TOKEN).status_code == 200
    (entry,) = predict(backend, [url_task(2, "/data/upload/1/x.png")])
    assert_good(entry, 1)
    assert other_host.requests("/data/upload/1/x.png")[-1].headers.get("authorization") == f"Token {SETUP_TOKEN}"
    seen = " ".join(v for r in other_host.requests("/data/upload/1/x.png") for v in r.headers.values())
    assert ENV_KEY not in seen
    assert backend.get("/health").json()["label_studio"]["source"] == "setup"
    assert any("LABEL_STUDIO_URL is not" in r.getMessage() for r in caplog.records), "no warning about the unused key"


def test_setup_hostname_does_not_switch_the_ssrf_guard_off(backend_factory, emu, other_host, gemini_logs, net_fence):
    """After a /setup naming http://127.0.0.6:P, URLs on 127.0.0.6:P are still refused by the guard
    (case 2): only LABEL_STUDIO_URL or FETCH_ALLOWLIST, which the operator sets, exempt an address."""
    backend = backend_factory(**GUARD_DEFAULTS)
    other_host.add("/x.png", png(1))
    other_host.add("/data/upload/1/x.png", png(1))
    assert _setup(backend, other_host.base_url, SETUP_TOKEN).status_code == 200
    absolute, relative, good = predict(
        backend, [url_task(1, other_host.url("/x.png")), url_task(2, "/data/upload/1/x.png"), good_task(3)]
    )
    check_contract(backend, gemini_logs, absolute, 1, "image_blocked_address", "127.0.0.6", "loopback")
    error = check_contract(backend, gemini_logs, relative, 2, "image_blocked_address", "127.0.0.6")
    assert "LABEL_STUDIO_URL" in error and "/setup" in error, error  # says what the operator can do
    assert_good(good, 3)
    assert other_host.hits("/x.png") == 0 and other_host.hits("/data/upload/1/x.png") == 0


def test_setup_hostname_allowlisted_by_the_operator_is_fetched_with_the_setup_token(backend_factory, emu, other_host):
    """The way that works without LABEL_STUDIO_URL: the operator allowlists Label Studio's host."""
    backend = backend_factory(FETCH_ALLOWLIST="127.0.0.6", FETCH_ALLOW_PRIVATE=None)
    other_host.add("/data/upload/3/a.png", png(1))
    assert _setup(backend, other_host.base_url, SETUP_TOKEN).status_code == 200
    (entry,) = predict(backend, [url_task(1, "/data/upload/3/a.png")])
    assert_good(entry, 1)
    assert other_host.requests("/data/upload/3/a.png")[0].headers.get("authorization") == f"Token {SETUP_TOKEN}"


def test_label_studio_trust_is_its_origin_not_its_host(backend_factory, emu, gemini_logs, net_fence):
    """LABEL_STUDIO_URL=http://127.0.0.5:P1: http://127.0.0.5:P2/internal-admin is another service
    on Label Studio's machine and stays refused (case 3); Label Studio's own URLs are fetched."""
    with ImageServer("127.0.0.5") as ls, ImageServer("127.0.0.5") as admin:
        backend = backend_factory(LABEL_STUDIO_URL=ls.base_url, LABEL_STUDIO_API_KEY=ENV_KEY, **GUARD_DEFAULTS)
        ls.add("/data/upload/1/a.png", png(1))
        admin.add("/internal-admin", png(2))
        own, other_port, other_scheme = predict(
            backend,
            [
                url_task(1, "/data/upload/1/a.png"),
                url_task(2, admin.url("/internal-admin")),
                url_task(3, ls.base_url.replace("http://", "https://") + "/data/upload/1/a.png"),
            ],
        )
        assert_good(own, 1)
        assert ls.requests("/data/upload/1/a.png")[0].headers.get("authorization") == f"Token {ENV_KEY}"
        check_contract(backend, gemini_logs, other_port, 2, "image_blocked_address", "127.0.0.5", "loopback")
        check_contract(backend, gemini_logs, other_scheme, 3, "image_blocked_address", "127.0.0.5")
        assert admin.hits("/internal-admin") == 0
        assert len(ls.requests("/data/upload/1/a.png")) == 1  # the https:// spelling never connected
