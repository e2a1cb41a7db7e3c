"""No silent stand-in for Gemini (issue 22): with no API key and no GEMINI_EMULATOR=embedded,
`gemini-ls serve` stays up and says so (one log line, /health, /setup, /predict) without calling
anything, and the commands that call Gemini refuse to start. GEMINI_BASE_URL points at a test
emulator throughout, so its counters prove that nothing was asked."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY
from gemini_ls.settings import NO_GEMINI_MESSAGE
from tests.helpers import config, rect_control

BIN = Path(sys.executable).parent / "gemini-ls"
CONFIG = config(rect_control())
NAMES = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_EMULATOR=embedded")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_", "REDIS_", "LABEL_STUDIO_"))}
    env.update({"HOME": str(tmp_path), "LOG_LEVEL": "INFO", **extra})
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _calls(emu) -> int:
    counters = emu.counters()
    return sum(counters["requests"].values()) + counters["uploads"]


def _image_uri(seed: int = 3) -> str:
    png = encode_image(make_scene(320, 240, 2, seed=seed).image, "png")
    return "data:image/png;base64," + base64.b64encode(png).decode()


def test_serve_with_no_key_stays_up_says_why_once_and_predicts_nothing(tmp_path, emu):
    port = _free_port()
    log = tmp_path / "serve.log"
    env = _env(tmp_path, GEMINI_BASE_URL=emu.url, WORKERS="2", THREADS="2")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            assert proc.poll() is None, log.read_text()
            try:
                resp = requests.get(url + "/health", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise AssertionError(log.read_text())
        # 200 all the same: compose's healthcheck and Label Studio's connect go on working
        assert resp.status_code == 200
        health = resp.json()
        assert health["status"] == "NOT_CONFIGURED" and health["error"] == NO_GEMINI_MESSAGE
        assert health["gemini"]["configured"] is False and health["gemini"]["emulator"] is False
        assert health["gemini"]["error"] == NO_GEMINI_MESSAGE and "NOT CONFIGURED" in health["gemini"]["endpoint"]
        assert all(name in health["error"] for name in NAMES)

        setup = requests.post(url + "/setup", json={"schema": CONFIG}, timeout=5)
        assert setup.status_code == 200 and setup.json()["error"] == NO_GEMINI_MESSAGE
        assert not setup.json()["model_version"].endswith("-emulator")

        tasks = [{"id": 7, "data": {"image": _image_uri(3)}}, {"id": 8, "data": {"image": _image_uri(4)}}]
        body = requests.post(url + "/predict", json={"tasks": tasks, "label_config": CONFIG}, timeout=30).json()
        assert [r.get("task") for r in body["results"]] == [7, 8]
        for entry in body["results"]:
            assert "result" not in entry, entry  # Label Studio stores nothing
            assert entry["error"] == NO_GEMINI_MESSAGE

        # interactive: an HTTP error, which is what Label Studio shows the annotator
        click = requests.post(url + "/predict", json={"tasks": tasks[:1], "label_config": CONFIG,
                                                      "params": {"context": {}}}, timeout=30)
        assert click.status_code == 503 and "GEMINI_API_KEY" in click.reason

        assert _calls(emu) == 0, emu.counters()
        text = log.read_text()
        assert text.count("Gemini is not configured") == 1, text  # once, though two workers started
        assert "NO GEMINI API KEY SET" not in text  # no emulator banner: nothing stands in
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.mark.parametrize("args", [
    ["predict", "IMAGE", "--config", "CONFIG", "--quiet"],
    ["preview", "IMAGE", "--config", "CONFIG", "-o", "out.png"],
    ["prelabel", "--project", "1"],
    ["worker", "--burst"],
    ["evaluate", "--project", "1", "--variant", "model=gemini-2.5-flash"],
])
def test_commands_that_call_gemini_refuse_to_start_with_no_key(tmp_path, emu, args):
    image = tmp_path / "scene.png"
    image.write_bytes(encode_image(make_scene(320, 240, 2, seed=5).image, "png"))
    cfg = tmp_path / "config.xml"
    cfg.write_text(CONFIG)
    argv = [str(image) if a == "IMAGE" else str(cfg) if a == "CONFIG" else a for a in args]
    env = _env(tmp_path, GEMINI_BASE_URL=emu.url, LABEL_STUDIO_URL="http://127.0.0.1:9", LABEL_STUDIO_API_KEY="t" * 40)
    done = subprocess.run([str(BIN), *argv], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert f"gemini-ls {args[0]}: {NO_GEMINI_MESSAGE}" in done.stderr
    assert done.stdout == "" and not (tmp_path / "out.png").exists()
    assert _calls(emu) == 0


def test_a_key_wins_over_the_emulator_asked_for_and_says_so(tmp_path, emu):
    image = tmp_path / "scene.png"
    image.write_bytes(encode_image(make_scene(320, 240, 2, seed=6).image, "png"))
    cfg = tmp_path / "config.xml"
    cfg.write_text(CONFIG)
    env = _env(tmp_path, GEMINI_BASE_URL=emu.url, GEMINI_API_KEY=DEFAULT_API_KEY, GEMINI_EMULATOR="embedded")
    done = subprocess.run([str(BIN), "predict", str(image), "--config", str(cfg), "--quiet"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "GEMINI_EMULATOR=embedded is ignored: a Gemini API key is set" in done.stderr
    assert "NO GEMINI API KEY SET" not in done.stderr  # the embedded emulator did not start
    assert emu.counters()["requests"].get("generateContent", 0) >= 1  # the key's endpoint answered
