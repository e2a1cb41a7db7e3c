"""Label Studio credentials against a loopback imitation of LS 1.23's token endpoints."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from gemini_ls.images.errors import ImageError
from gemini_ls.images.fetch import ImageFetcher
from gemini_ls.labelstudio import CredentialStore, LabelStudioAuth, LabelStudioAuthError, key_kind
from gemini_ls.metrics import Metrics
from gemini_ls.settings import Settings
from tests.fixtures.servers import FakeLabelStudio, make_jwt

PNG = b"\x89PNG\r\n\x1a\n" + b"pretend-png" * 10


def fetcher_for(store: CredentialStore) -> ImageFetcher:
    # LS's own host is allowed by the SSRF guard through the credential store: no allowlist needed
    return ImageFetcher(Settings(image_fetch_timeout=5.0), store, Metrics())


def test_key_kinds():
    assert key_kind("labtoken0123456789abcdef") == "legacy"
    assert key_kind(make_jwt({"token_type": "refresh", "exp": 1})) == "pat"
    assert key_kind(make_jwt({"token_type": "access", "exp": 1})) == "access"
    assert key_kind("a.b.c") == "legacy"  # not base64 JSON: not a JWT


def test_legacy_token_is_sent_as_token(fake_label_studio: FakeLabelStudio):
    ls = fake_label_studio
    ls.add_file("/data/upload/1/a.png", PNG)
    store = CredentialStore(ls.url, ls.legacy_token)
    assert store.current().headers() == {"Authorization": f"Token {ls.legacy_token}"}
    assert fetcher_for(store).fetch("/data/upload/1/a.png") == PNG
    assert ls.server.requests("/data/upload/1/a.png")[0].headers["authorization"] == f"Token {ls.legacy_token}"
    assert ls.refreshes == 0


def test_pat_is_refreshed_and_bearer_access_is_used(fake_label_studio: FakeLabelStudio):
    ls = fake_label_studio
    ls.add_file("/data/upload/1/a.png", PNG)
    store = CredentialStore(ls.url, ls.pat)
    fetcher = fetcher_for(store)
    assert fetcher.fetch("/data/upload/1/a.png") == PNG
    assert fetcher.fetch("/data/upload/1/a.png") == PNG
    assert ls.refreshes == 1  # the access token is cached
    sent = [r.headers["authorization"] for r in ls.server.requests("/data/upload/1/a.png")]
    assert all(h.startswith("Bearer ") for h in sent)
    assert ls.pat not in " ".join(sent)  # the PAT itself is only ever posted to /api/token/refresh/
    refresh_req = ls.server.requests("/api/token/refresh/")[0]
    assert refresh_req.method == "POST" and ls.pat.encode() in refresh_req.body
    assert "authorization" not in refresh_req.headers


def test_access_token_is_refreshed_again_before_it_expires(image_server):
    # 32 s lifetime - 30 s margin: the cached access token is good for 1-2 s only
    ls = FakeLabelStudio(image_server, access_lifetime=32)
    ls.add_file("/data/upload/1/a.png", PNG)
    fetcher = fetcher_for(CredentialStore(ls.url, ls.pat))
    fetcher.fetch("/data/upload/1/a.png")
    assert ls.refreshes == 1
    time.sleep(2.2)
    assert fetcher.fetch("/data/upload/1/a.png") == PNG
    assert ls.refreshes == 2
    first, second = (r.headers["authorization"] for r in image_server.requests("/data/upload/1/a.png"))
    assert first != second


def test_expiry_uses_the_exp_claim_with_an_injected_clock(fake_label_studio: FakeLabelStudio):
    ls = fake_label_studio  # 300 s tokens
    now = [time.time()]
    auth = LabelStudioAuth(ls.url, ls.pat, clock=lambda: now[0])
    h1 = auth.headers()
    now[0] += 200
    assert auth.headers() == h1 and ls.refreshes == 1
    now[0] += 75  # 275 s: within 30 s of exp
    assert auth.headers() != h1 and ls.refreshes == 2


def test_concurrent_callers_share_one_refresh(fake_label_studio: FakeLabelStudio):
    ls = fake_label_studio
    ls.server.add_handler("/api/token/refresh/", ls._refresh, delay=0.3)  # a slow LS
    auth = LabelStudioAuth(ls.url, ls.pat)
    results: list[dict] = []
    threads = [threading.Thread(target=lambda: results.append(auth.headers())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len({r["Authorization"] for r in results}) == 1
    assert ls.refreshes == 1


def test_revoked_pat_gives_a_clear_unauthorized_error(fake_label_studio: FakeLabelStudio):
    ls = fake_label_studio
    ls.revoked = True
    ls.add_file("/data/upload/1/a.png", PNG)
    metrics = Metrics()
    fetcher = ImageFetcher(Settings(image_fetch_timeout=5.0), CredentialStore(ls.url, ls.pat), metrics)
    with pytest.raises(ImageError) as e:
        fetcher.fetch("/data/upload/1/a.png")
    assert e.value.reason == "unauthorized"
    msg = str(e.value)
    assert "Label Studio rejected LABEL_STUDIO_API_KEY" in msg and "refresh returned 401" in msg
    assert ls.pat not in msg
    assert metrics.image_fetch_errors.labels(reason="unauthorized")._value.get() == 1


def test_access_jwt_is_sent_as_bearer_without_refresh(fake_label_studio: FakeLabelStudio):
    ls = fake_label_studio
    access = LabelStudioAuth(ls.url, ls.pat).headers()["Authorization"].split(" ", 1)[1]
    assert ls.refreshes == 1
    ls.add_file("/data/upload/1/a.png", PNG)
    store = CredentialStore(ls.url, access)
    assert store.current().kind == "access"
    assert fetcher_for(store).fetch("/data/upload/1/a.png") == PNG
    assert ls.refreshes == 1
    assert ls.server.requests("/data/upload/1/a.png")[0].headers["authorization"] == f"Bearer {access}"


def test_disabled_legacy_token_explains_itself(image_server):
    ls = FakeLabelStudio(image_server, legacy_enabled=False)
    ls.add_file("/data/upload/1/a.png", PNG)
    with pytest.raises(ImageError) as e:
        fetcher_for(CredentialStore(ls.url, ls.legacy_token)).fetch("/data/upload/1/a.png")
    assert e.value.reason == "unauthorized"
    assert "HTTP 401" in str(e.value) and "legacy token" in str(e.value)
    assert "/data/upload/1/a.png" in str(e.value)
    assert ls.legacy_token not in str(e.value)


def test_env_wins_over_setup_and_setup_is_the_fallback(fake_label_studio: FakeLabelStudio, caplog):
    ls = fake_label_studio
    caplog.set_level(logging.INFO, logger="gemini_ls.labelstudio")
    env = CredentialStore(ls.url, ls.legacy_token)
    env.update_from_setup("http://other-ls:8080", "setup-token-xyz")
    assert env.current().source == "env" and env.base_url == ls.url
    assert env.describe() == {"url": ls.url, "key_type": "legacy", "source": "env"}
    assert env.current().headers()["Authorization"] == f"Token {ls.legacy_token}"

    store = CredentialStore(None, None)
    assert store.current() is None and store.base_url is None
    assert store.describe() == {"url": None, "key_type": None, "source": None}
    store.update_from_setup(ls.url + "/", ls.legacy_token)
    auth = store.current()
    assert auth.source == "setup" and store.base_url == ls.url
    store.update_from_setup(ls.url, ls.legacy_token)  # LS calls /setup over and over
    assert store.current() is auth  # same object: a PAT's cached access token would survive
    store.update_from_setup("not a url", ls.legacy_token)
    assert store.base_url is None and store.current() is None

    setup_logs = [r.getMessage() for r in caplog.records]
    assert any("from LABEL_STUDIO_API_KEY" in m for m in setup_logs)
    assert any("from /setup access_token" in m for m in setup_logs)
    assert sum("from /setup access_token" in m for m in setup_logs) == 1  # once per change
    assert not any(ls.legacy_token in m or "setup-token-xyz" in m for m in setup_logs)


def test_setup_token_401_hint_names_setup(image_server):
    ls = FakeLabelStudio(image_server, legacy_enabled=False)
    ls.add_file("/data/upload/1/a.png", PNG)
    store = CredentialStore(None, None)
    store.update_from_setup(ls.url, ls.legacy_token)
    # a host named only by /setup is not exempt from the SSRF guard: the operator allowlists it
    fetcher = ImageFetcher(Settings(image_fetch_timeout=5.0, fetch_allowlist=("127.0.0.1",)), store, Metrics())
    with pytest.raises(ImageError) as e:
        fetcher.fetch("/data/upload/1/a.png")
    assert "/setup" in str(e.value) and "LABEL_STUDIO_API_KEY" in str(e.value)


def test_auth_repr_and_errors_never_show_the_key(fake_label_studio: FakeLabelStudio):
    auth = LabelStudioAuth(fake_label_studio.url, fake_label_studio.pat)
    assert fake_label_studio.pat not in repr(auth)
    with pytest.raises(ValueError) as e:
        LabelStudioAuth("ftp://ls", "secret-key-123")
    assert "secret-key-123" not in str(e.value)


def test_unreachable_label_studio_on_refresh():
    pat = make_jwt({"token_type": "refresh"})
    auth = LabelStudioAuth("http://127.0.0.1:9", pat)  # port 9: discard, closed
    with pytest.raises(LabelStudioAuthError) as e:
        auth.headers()
    assert e.value.reason == "connection" and "127.0.0.1:9" in str(e.value)
    # an image download says the same, as the image edge's error of the same reason
    with pytest.raises(ImageError) as e2:
        fetcher_for(CredentialStore("http://127.0.0.1:9", pat)).fetch("/data/upload/1/a.png")
    assert e2.value.reason == "connection" and "127.0.0.1:9" in str(e2.value)
