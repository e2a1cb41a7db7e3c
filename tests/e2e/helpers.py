"""Infrastructure for the e2e suite: a CORS image server, our backend as a real subprocess,
Prometheus text parsing, headless Chromium through Selenium, and the geometry checks against scene
ground truth."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image, ImageDraw
from selenium import webdriver
from selenium.common.exceptions import JavascriptException, TimeoutException
from selenium.webdriver.support.wait import WebDriverWait

from tests.fixtures.labelstudio import ARTIFACTS, ROOT, free_port
from tests.fixtures.processes import register, stop_group

GEMINI_LS_BIN = Path(os.environ.get("GEMINI_LS_BIN", ROOT / ".venv" / "bin" / "gemini-ls"))
EMULATOR_KEY = "emulator-key"


# ----------------------------------------------------------------------------------------------
# Image server with wide-open CORS (Label Studio's editor loads task images cross-origin)
# ----------------------------------------------------------------------------------------------


class CorsImageServer:
    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.hits: dict[str, int] = {}
        files, hits = self.files, self.hits

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _cors(self):
                self.send_header("Access-Control-Allow-Origin", "*")
                self.send_header("Access-Control-Allow-Headers", "*")

            def do_OPTIONS(self):
                self.send_response(204)
                self._cors()
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                path = urllib.parse.unquote(self.path.split("?", 1)[0])
                hits[path] = hits.get(path, 0) + 1
                entry = files.get(path)
                if entry is None:
                    body, ctype, code = b"not found", "text/plain", 404
                else:
                    body, ctype = entry
                    code = 200
                self.send_response(code)
                self._cors()
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="cors-images", daemon=True)
        self._thread.start()

    def add(self, path: str, body: bytes, content_type: str = "image/png") -> str:
        path = "/" + path.lstrip("/")
        self.files[path] = (body, content_type)
        return self.url(path)

    def url(self, path: str) -> str:
        return self.base + "/" + path.lstrip("/")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# ----------------------------------------------------------------------------------------------
# Our backend as a subprocess: exactly what a user runs (`gemini-ls serve`, gunicorn)
# ----------------------------------------------------------------------------------------------


def parse_prometheus(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)", line)
        if not m:
            continue
        labels = tuple(sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or "")))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


@dataclass
class BackendProcess:
    url: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen = field(repr=False)
    home: str = ""

    def metrics(self) -> dict:
        r = requests.get(self.url + "/metrics", timeout=10)
        r.raise_for_status()
        return parse_prometheus(r.text)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0.0 when absent)."""
        want = set(labels.items())
        return sum(v for (n, lab), v in self.metrics().items() if n == name and want <= set(lab))

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log_text())
            if m:
                return m.group(0)
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} not in the backend log {self.log_path} after {timeout} s:\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        try:
            self._stop()
        finally:
            if self.home:
                shutil.rmtree(self.home, ignore_errors=True)

    def _stop(self) -> None:
        # the whole group, also when the master is already gone (its embedded worker is not)
        stop_group(self.process.pid, self.process, grace=8.0)

    def kill(self) -> None:
        """SIGKILL the server and its children at once (a machine dying), nothing graceful."""
        stop_group(self.process.pid, self.process, sig=signal.SIGKILL)


def backend_env(emulator_url: str, label_studio=None, **extra: str) -> dict[str, str]:
    """The environment of a `gemini-ls serve` under test: the e2e emulator, loopback fetches, one worker."""
    env = {
        "GEMINI_BASE_URL": emulator_url,
        "GEMINI_API_KEY": EMULATOR_KEY,
        "FETCH_ALLOWLIST": "127.0.0.1",
        "PREDICT_TIMEOUT": "60",
        "GEMINI_MAX_RETRIES": "2",
        "WORKERS": "1",
        "THREADS": "8",
    }
    if label_studio is not None:
        env["LABEL_STUDIO_URL"] = label_studio.url
        env["LABEL_STUDIO_API_KEY"] = label_studio.api_key
    env.update(extra)
    return env


def start_backend_process(name: str, env: dict[str, str], timeout: float = 30, port: int | None = None) -> BackendProcess:
    """`port`: reuse a stopped backend's port (a restart, as Label Studio knows the backend by its URL)."""
    if not GEMINI_LS_BIN.exists():
        raise AssertionError(f"{GEMINI_LS_BIN} not found: install the project (pip install -e .[test])")
    port = port or free_port()
    log_path = ARTIFACTS / f"backend-{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_", "LABEL_STUDIO_", "REDIS_"))}
    home = tempfile.mkdtemp(prefix=f"e2e-backend-{name}-")  # gunicorn writes ~/.gunicorn/gunicorn.ctl
    full_env.update(PYTHONUNBUFFERED="1", LOG_LEVEL="INFO", HOME=home)
    full_env.update(env)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(GEMINI_LS_BIN), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    register(proc, f"gemini-ls serve {name}")
    url = f"http://127.0.0.1:{port}"
    bp = BackendProcess(url=url, port=port, env=env, log_path=log_path, process=proc, home=home)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gemini-ls serve exited with {proc.returncode}:\n{bp.log_text()[-3000:]}")
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return bp
        except requests.RequestException:
            pass
        time.sleep(0.1)
    bp.stop()
    raise AssertionError(f"gemini-ls serve not healthy after {timeout} s:\n{bp.log_text()[-3000:]}")


# ----------------------------------------------------------------------------------------------
# Headless Chromium, driven by Selenium through Debian's version-matched chromedriver
# ----------------------------------------------------------------------------------------------

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
# Headless as root, no GPU; the rest stop Chromium's own traffic (updates, sync, QUIC probes),
# which the closed network of CI refuses anyway, so nothing waits on it.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def _executable(env_name: str, candidates: tuple[str, ...]) -> str | None:
    explicit = os.environ.get(env_name)
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return next((c for c in candidates if os.access(c, os.X_OK)), None)


def find_chromium() -> str | None:
    return _executable("CHROMIUM", CHROMIUM_CANDIDATES)


def find_chromedriver() -> str | None:
    return _executable("CHROMEDRIVER", CHROMEDRIVER_CANDIDATES)


class Chromium:
    """One headless Chromium with a fresh profile, HOME and XDG dirs in a temp dir, as a WebDriver.

    The driver path is given explicitly, so Selenium Manager never runs (it would try to download)."""

    def __init__(self, width: int = 1600, height: int = 1000, log_path: Path | None = None) -> None:
        browser, driver = find_chromium(), find_chromedriver()
        if not browser or not driver:
            raise RuntimeError(
                f"need chromium and its chromedriver (apt-get install chromium chromium-driver, or set CHROMIUM= and "
                f"CHROMEDRIVER=): found browser={browser} driver={driver}"
            )
        self.tmp = Path(tempfile.mkdtemp(prefix="e2e-chromium-"))
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={self.tmp / 'profile'}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        env = {
            **os.environ,
            "HOME": str(self.tmp),
            "XDG_CONFIG_HOME": str(self.tmp / "config"),
            "XDG_CACHE_HOME": str(self.tmp / "cache"),
            "XDG_DATA_HOME": str(self.tmp / "data"),
        }
        log = log_path or (self.tmp / "chromedriver.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        service = webdriver.ChromeService(executable_path=driver, log_output=str(log), env=env)
        try:
            self.driver = webdriver.Chrome(options=options, service=service)
        except Exception:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        try:
            self.driver.set_page_load_timeout(60)
            # --window-size counts the (invisible) window frame: grow the window until the page itself
            # (the viewport, what a screenshot shows) is width x height.
            frame_w, frame_h = self.evaluate("[window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]")
            self.driver.set_window_size(width + frame_w, height + frame_h)
        except Exception:
            self.close()
            raise

    def evaluate(self, expression: str) -> Any:
        """The value of one JavaScript expression in the page."""
        return self.driver.execute_script(f"return ({expression});")

    def wait_for(self, expression: str, timeout: float = 30, interval: float = 0.25) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value."""
        wait = WebDriverWait(self.driver, timeout, poll_frequency=interval, ignored_exceptions=(JavascriptException,))
        try:
            return wait.until(lambda _d: self.evaluate(expression))
        except TimeoutException:
            raise TimeoutException(f"timed out after {timeout} s on {self.driver.current_url} waiting for {expression!r}") from None

    def login_label_studio(self, url: str, email: str, password: str, timeout: float = 60) -> None:
        """Log in through Label Studio's own form, as a user does. Injecting a session cookie made by
        `requests` was flaky on CI (one run in ~30 landed on /user/login/ with the cookie in place),
        and the form is what a user goes through anyway."""
        login = url.rstrip("/") + "/user/login/"
        deadline = time.monotonic() + timeout
        while True:
            self.driver.get(login)
            self.wait_for("!!document.querySelector('input[name=email]') || !location.pathname.startsWith('/user/login')")
            if "/user/login" not in self.driver.current_url:
                return  # already logged in
            self.driver.execute_script(
                "const f = document.querySelector('input[name=email]').form;"
                "f.querySelector('input[name=email]').value = arguments[0];"
                "f.querySelector('input[name=password]').value = arguments[1];"
                "f.submit();",
                email,
                password,
            )
            try:
                WebDriverWait(self.driver, 20, poll_frequency=0.25).until(lambda d: "/user/login" not in d.current_url)
                return
            except TimeoutException:
                if time.monotonic() > deadline:
                    raise TimeoutException(f"login to {url} as {email} did not leave the login page") from None

    def navigate(self, url: str) -> None:
        self.driver.get(url)  # returns once the document is loaded (page load strategy "normal")

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.driver.get_screenshot_as_png())
        return path

    def close(self) -> None:
        try:
            self.driver.quit()  # ends Chromium and chromedriver
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------------------------
# Geometry: Label Studio percentages -> pixels, compared with the scene's ground truth
# ----------------------------------------------------------------------------------------------


def rect_to_box(value: dict, width: int, height: int) -> tuple[float, float, float, float]:
    x0 = value["x"] / 100.0 * width
    y0 = value["y"] / 100.0 * height
    return (x0, y0, x0 + value["width"] / 100.0 * width, y0 + value["height"] / 100.0 * height)


def polygon_to_mask(points: list[list[float]], width: int, height: int) -> np.ndarray:
    img = Image.new("L", (width, height), 0)
    ImageDraw.Draw(img).polygon([(x / 100.0 * width, y / 100.0 * height) for x, y in points], fill=255, outline=255)
    return np.asarray(img) > 0


def brush_to_mask(rle: list[int], width: int, height: int) -> np.ndarray:
    from label_studio_sdk.converter.brush import decode_rle

    flat = np.asarray(decode_rle(rle), dtype=np.uint8)
    return flat.reshape(height, width, 4)[:, :, 3] > 0


def best_match(candidates: list[Any], score) -> tuple[Any, float]:
    best, best_score = None, -1.0
    for c in candidates:
        s = score(c)
        if s > best_score:
            best, best_score = c, s
    return best, best_score
