"""`python -m gemini_ls.emulator --port N` starts a server the SDK can use."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
from google import genai
from google.genai import types

from gemini_ls.emulator.scenes import encode_image, make_scene
from gemini_ls.emulator.server import DEFAULT_API_KEY


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_module_entry_point_serves_the_sdk():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gemini_ls.emulator", "--port", str(port), "--latency", "0.2+-0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/_emulator/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        client = genai.Client(api_key=DEFAULT_API_KEY, http_options=types.HttpOptions(base_url=base, api_version="v1beta"))
        scene = make_scene(300, 200, names=["blue circle"], seed=1)
        t0 = time.monotonic()
        resp = client.models.generate_content(model="gemini-2.5-flash", contents=[
            types.Part.from_bytes(data=encode_image(scene.image, "jpeg"), mime_type="image/jpeg"), "Point to the blue circle"])
        assert time.monotonic() - t0 >= 0.1  # --latency applies
        assert '"label": "blue circle"' in resp.text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert f"listening on http://127.0.0.1:{port}" in out
