"""HTTP-level security: basic auth on every route (both ways), request body limits, bad JSON."""

from __future__ import annotations

import json

import pytest
import requests

from gemini_ls.emulator.server import DEFAULT_API_KEY
from tests.faults.common import CONFIG, assert_good, good_task
from tests.fixtures.backend import backend_test_env, start_backend

USER, PASSWORD = "labelstudio", "s3cret-Pa55word"

# route -> (method, body that is valid for it)
ROUTES = {
    "/": ("GET", None),
    "/setup": ("POST", {"project": "7.1", "schema": CONFIG, "hostname": "", "access_token": ""}),
    "/predict": ("POST", {"tasks": [good_task(1)], "label_config": CONFIG, "project": "7.1", "params": {}}),
    "/webhook": ("POST", {"action": "PROJECT_UPDATED", "project": {"id": 7}}),
    "/metrics": ("GET", None),
}


def _call(backend, route: str, auth=None) -> requests.Response:
    method, body = ROUTES[route]
    return requests.request(method, backend.url + route, json=body, auth=auth, timeout=60)


def _module_backend(emulator, **env):
    full = backend_test_env(emulator.url, DEFAULT_API_KEY)
    full.update(env)
    return start_backend(full)


@pytest.fixture(scope="module")
def locked(emulator):
    backend = _module_backend(emulator, BASIC_AUTH_USER=USER, BASIC_AUTH_PASS=PASSWORD)
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def shared(emulator):
    backend = _module_backend(emulator)
    yield backend
    backend.stop()


@pytest.mark.parametrize("route", list(ROUTES))
def test_basic_auth_refuses_without_or_with_wrong_credentials(locked, route, emu):
    for auth in (None, (USER, "wrong"), ("someone", PASSWORD), (USER, ""), (USER, PASSWORD + "x")):
        resp = _call(locked, route, auth)
        assert resp.status_code == 401, (route, auth, resp.status_code)
        assert resp.headers["Content-Type"].startswith("application/json")
        assert "authentication required" in resp.json()["error"]
        assert PASSWORD not in resp.text
    # garbage Authorization headers are 401s too, never 500s
    for header in ("Basic", "Basic !!!notbase64", "Bearer abc", "Basic " + "QUJD", "basic dXNlcjpwYXNz"):
        method, body = ROUTES[route]
        resp = requests.request(method, locked.url + route, json=body, headers={"Authorization": header}, timeout=30)
        assert resp.status_code == 401, (route, header, resp.status_code)
    assert emu.counters()["requests"].get("generateContent", 0) == 0  # nothing reached Gemini


@pytest.mark.parametrize("route", list(ROUTES))
def test_basic_auth_lets_the_right_credentials_in(locked, route, emu):
    resp = _call(locked, route, (USER, PASSWORD))
    assert resp.status_code == 200, (route, resp.text)
    if route == "/predict":
        assert_good(resp.json()["results"][0], 1)
    if route == "/setup":
        assert resp.json()["model_version"].startswith("gemini-ls-")


def test_health_stays_open(locked, emu):
    for auth in (None, (USER, "wrong"), (USER, PASSWORD)):
        resp = requests.get(locked.url + "/health", auth=auth, timeout=10)
        assert resp.status_code == 200 and resp.json()["status"] == "UP"


def test_no_auth_configured_means_open(backend_factory, emu):
    backend = backend_factory()
    for route in ROUTES:
        assert _call(backend, route).status_code == 200, route


LIMIT = 4096


@pytest.fixture
def small(backend_factory, emu):
    return backend_factory(MAX_REQUEST_BYTES=str(LIMIT))


@pytest.mark.parametrize("route", ["/predict", "/webhook", "/setup"])
def test_body_over_max_request_bytes_is_413_json(small, route):
    big = {"action": "X", "tasks": [], "label_config": CONFIG, "pad": "x" * (LIMIT * 2)}
    resp = requests.post(small.url + route, json=big, timeout=30)
    assert resp.status_code == 413, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    assert f"MAX_REQUEST_BYTES={LIMIT}" in resp.json()["error"]
    assert small.get("/health").status_code == 200


@pytest.mark.parametrize("route", ["/predict", "/webhook", "/setup"])
def test_chunked_body_over_max_request_bytes_is_413_json(small, route):
    """No Content-Length (Transfer-Encoding: chunked): the limit must hold while reading."""

    def chunks():
        yield b'{"action": "X", "pad": "'
        for _ in range(LIMIT // 512 + 4):
            yield b"x" * 512
        yield b'"}'

    resp = requests.post(small.url + route, data=chunks(), headers={"Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == 413, resp.text
    assert f"MAX_REQUEST_BYTES={LIMIT}" in resp.json()["error"]
    assert small.get("/health").status_code == 200


def test_body_just_under_the_limit_is_accepted(small):
    body = {"tasks": [good_task(1)], "label_config": CONFIG, "params": {}}
    size = len(json.dumps(body))
    assert size < LIMIT
    resp = requests.post(small.url + "/predict", json=body, timeout=60)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("route", ["/predict", "/webhook", "/setup"])
@pytest.mark.parametrize(
    "raw, words",
    [
        (b'{"tasks": [', "not valid JSON"),
        (b"{'tasks': []}", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"", "empty"),
        (b"[]", "must be a JSON object"),
        (b'"tasks"', "must be a JSON object"),
        (b"42", "must be a JSON object"),
        (b"null", "must be a JSON object"),
    ],
    ids=["truncated", "single_quotes", "binary", "empty", "list", "string", "number", "null"],
)
def test_malformed_or_non_object_json_is_400_with_a_message(shared, emu, route, raw, words):
    backend = shared
    resp = requests.post(backend.url + route, data=raw, headers={"Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == 400, (resp.status_code, resp.text)
    assert resp.headers["Content-Type"].startswith("application/json")
    assert words.lower() in resp.json()["error"].lower(), resp.json()
    assert backend.get("/health").status_code == 200


@pytest.mark.parametrize(
    "body, words",
    [
        ({"tasks": "nope", "label_config": CONFIG}, "'tasks' must be a list"),
        ({"tasks": [1, 2], "label_config": CONFIG}, "must be an object"),
        ({"label_config": CONFIG}, "'tasks' must be a list"),
    ],
)
def test_predict_body_of_the_wrong_shape_is_400(shared, emu, body, words):
    backend = shared
    resp = backend.post("/predict", body)
    assert resp.status_code == 400 and words in resp.json()["error"], resp.text
