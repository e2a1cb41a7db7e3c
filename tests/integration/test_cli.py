"""The command line as a user runs it: `gemini-ls predict`, `preview`, and `serve` with no API key
and GEMINI_EMULATOR=embedded (the built-in emulator, announced loudly). With no key and no
GEMINI_EMULATOR: tests/integration/test_no_gemini.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from PIL import Image

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY
from tests.helpers import brush_control, config, rect_control, rect_ious

BIN = Path(sys.executable).parent / "gemini-ls"
CONFIG = config(rect_control(), brush_control())


def _env(tmp_path, **extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_", "REDIS_", "LABEL_STUDIO_"))}
    env.update({"HOME": str(tmp_path), "LOG_LEVEL": "WARNING", **extra})
    return env


def _files(tmp_path, n=3):
    scenes, paths = [], []
    for i in range(n):
        scene = make_scene(640, 480, 4, seed=70 + i)
        path = tmp_path / f"scene{i}.jpg"
        path.write_bytes(encode_image(scene.image, "jpeg", orientation=6 if i == 1 else 1))
        scenes.append(scene)
        paths.append(str(path))
    cfg = tmp_path / "config.xml"
    cfg.write_text(CONFIG)
    return scenes, paths, str(cfg)


def test_predict_prints_label_studio_json_with_progress_and_reports_failures(tmp_path, emulator):
    scenes, paths, cfg = _files(tmp_path)
    missing = str(tmp_path / "missing.png")
    proc = subprocess.run(
        [str(BIN), "predict", *paths, missing, "--config", cfg],
        env=_env(tmp_path, GEMINI_BASE_URL=emulator.url, GEMINI_API_KEY=DEFAULT_API_KEY),
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1  # one image failed
    entries = json.loads(proc.stdout)
    assert [e["image"] for e in entries] == [*paths, missing]
    for entry, scene in zip(entries, scenes):
        assert min(rect_ious(entry["result"], scene)) >= 0.9
        assert {r["type"] for r in entry["result"]} == {"rectanglelabels", "brushlabels"}
    assert "result" not in entries[-1]
    assert f"FAILED {missing}" in proc.stderr and "no such file" in proc.stderr
    assert "4/4 images" in proc.stderr  # the progress bar


def test_preview_draws_the_predictions(tmp_path, emulator):
    scenes, paths, cfg = _files(tmp_path, n=1)
    out = tmp_path / "overlay.png"
    proc = subprocess.run(
        [str(BIN), "preview", paths[0], "--config", cfg, "-o", str(out)],
        env=_env(tmp_path, GEMINI_BASE_URL=emulator.url, GEMINI_API_KEY=DEFAULT_API_KEY),
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as im:
        assert im.size == (640, 480)
        original = Image.open(paths[0]).convert("RGB")
        # the overlay differs from the picture where regions were drawn
        assert sum(abs(a - b) for a, b in zip(im.convert("RGB").getpixel((0, 0)), original.getpixel((0, 0)))) < 60
        obj = scenes[0].objects[0]
        edge = (obj.box[0], (obj.box[1] + obj.box[3]) // 2)
        assert im.convert("RGB").getpixel(edge) != original.getpixel(edge)
    assert "8 regions" in proc.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_without_a_key_asked_for_the_builtin_emulator_runs_on_it_and_says_so(tmp_path):
    port = _free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                env=_env(tmp_path, LOG_LEVEL="INFO", GEMINI_EMULATOR="embedded"), stdout=out,
                                stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                health = requests.get(url + "/health", timeout=1).json()
                break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise AssertionError(log.read_text())
        assert health["status"] == "UP" and health["gemini"]["emulator"] is True and health["gemini"]["configured"]
        assert "EMULATOR" in health["gemini"]["endpoint"]
        setup = requests.post(url + "/setup", json={"schema": CONFIG}, timeout=5).json()
        assert setup["model_version"].endswith("-emulator")
        scene = make_scene(320, 240, 2, seed=1)
        import base64
        uri = "data:image/png;base64," + base64.b64encode(encode_image(scene.image, "png")).decode()
        body = requests.post(
            url + "/predict", json={"tasks": [{"id": 1, "data": {"image": uri}}], "label_config": CONFIG}, timeout=30
        ).json()
        assert min(rect_ious(body["results"][0]["result"], scene)) >= 0.9
        assert "NO GEMINI API KEY SET" in log.read_text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
