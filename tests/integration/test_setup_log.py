"""/setup tells the operator, once per config, which controls get no predictions and why."""

from __future__ import annotations

import logging

from gemini_ls.emulator.server import DEFAULT_API_KEY
from gemini_ls.server import create_app
from gemini_ls.settings import Settings

CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<Labels name="label" toName="image"><Label value="A"/></Labels>'
    '<Rectangle name="bbox" toName="image"/><Polygon name="poly" toName="image"/>'
    '<RectangleLabels name="r" toName="image"><Label value="B"/></RectangleLabels></View>'
)


def test_setup_logs_ignored_controls_once(emu, caplog):
    app = create_app(Settings(api_key=DEFAULT_API_KEY, base_url=emu.url))
    try:
        client = app.test_client()
        with caplog.at_level(logging.WARNING, logger="gemini_ls.server"):
            for _ in range(3):  # Label Studio sends /setup again and again
                response = client.post("/setup", json={"schema": CONFIG, "project": "1.1"})
                assert response.status_code == 200 and response.get_json()["model_version"]
        lines = [r.getMessage() for r in caplog.records if "gets no predictions" in r.getMessage()]
        assert len(lines) == 1 and "poly (<Polygon>)" in lines[0] and "drawn by 'bbox'" in lines[0]
    finally:
        app.extensions["gemini_ls"].runner.shutdown()
