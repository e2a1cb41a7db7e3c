"""Smoke tests of the Label Studio fixtures themselves (no backend involved)."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.labelstudio import LEGACY_TOKEN, LS_VERSION, jwt_payload

pytestmark = pytest.mark.e2e


def test_legacy_instance_accepts_legacy_token(label_studio):
    assert label_studio.url.startswith("http://127.0.0.1:")
    assert label_studio.get("/api/version")["release"] == LS_VERSION
    me = label_studio.get("/api/current-user/whoami")
    assert me["email"] == label_studio.email
    assert label_studio.get("/api/jwt/settings")["legacy_api_tokens_enabled"] is True
    # started from the pre-migrated template: no migration on this start
    assert "Applying " not in label_studio.log_text()
    assert label_studio.start_seconds < 30, label_studio.start_seconds


def test_pat_instance_rejects_legacy_token_and_accepts_pat(label_studio_pat):
    ls = label_studio_pat
    r = requests.get(f"{ls.url}/api/current-user/whoami", headers={"Authorization": f"Token {LEGACY_TOKEN}"}, timeout=30)
    assert r.status_code == 401, r.text
    assert "legacy token" in r.text
    payload = jwt_payload(ls.api_key)
    assert payload["token_type"] == "refresh"
    # The PAT itself is not a bearer token; its refreshed access token is.
    r = requests.get(f"{ls.url}/api/current-user/whoami", headers={"Authorization": f"Bearer {ls.api_key}"}, timeout=30)
    assert r.status_code == 401
    assert ls.get("/api/current-user/whoami")["email"] == ls.email
    assert ls.get("/api/jwt/settings")["legacy_api_tokens_enabled"] is False


def test_project_import_and_upload_roundtrip(label_studio):
    ls = label_studio
    p = ls.create_project(
        "smoke", '<View><Image name="image" value="$image"/><Choices name="c" toName="image"><Choice value="A"/></Choices></View>'
    )
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000100ffff03000006000557bfab"
        "d40000000049454e44ae426082"
    )
    (tid,) = ls.upload_image(p["id"], "one.png", png)
    (tid2,) = ls.import_tasks(p["id"], [{"image": "http://127.0.0.1:9/x.png"}])
    tasks = {t["id"]: t for t in ls.tasks(p["id"])}
    assert tasks[tid]["data"]["image"].startswith("/data/upload/")
    assert tasks[tid2]["data"]["image"] == "http://127.0.0.1:9/x.png"
    # the uploaded file needs the token
    assert requests.get(ls.url + tasks[tid]["data"]["image"], timeout=30).status_code == 401
    r = requests.get(ls.url + tasks[tid]["data"]["image"], headers=ls.auth_header(), timeout=30)
    assert r.status_code == 200 and r.content == png
