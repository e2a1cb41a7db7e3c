"""Headless Chromium driven over the Chrome DevTools Protocol with the `websockets` package.

No Playwright/Selenium: one page target, synchronous request/response over CDP. Chromium runs
with a fresh --user-data-dir and its XDG dirs/HOME redirected into a temp dir, bound to 127.0.0.1.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from websockets.sync.client import connect

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


class CDPError(RuntimeError):
    pass


def find_chromium() -> str | None:
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for c in CHROMIUM_CANDIDATES:
        if os.access(c, os.X_OK):
            return c
    return shutil.which("chromium")


class Browser:
    """One headless Chromium process and a CDP session on its first page."""

    def __init__(self, width: int = 1600, height: int = 1000, log_path: Path | None = None) -> None:
        exe = find_chromium()
        if not exe:
            raise CDPError("Chromium not found (apt-get install chromium, or set CHROMIUM=/path)")
        self.tmp = Path(tempfile.mkdtemp(prefix="e2e-chromium-"))
        profile = self.tmp / "profile"
        profile.mkdir()
        env = {**os.environ}
        env.update(
            HOME=str(self.tmp),
            XDG_CONFIG_HOME=str(self.tmp / "config"),
            XDG_CACHE_HOME=str(self.tmp / "cache"),
            XDG_DATA_HOME=str(self.tmp / "data"),
        )
        log = open(log_path or (self.tmp / "chromium.log"), "ab")
        try:
            self.proc = subprocess.Popen(
                [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        self._ids = itertools.count(1)
        self.events: list[dict] = []
        try:
            port = self._devtools_port(profile)
            self.endpoint = f"http://127.0.0.1:{port}"
            ws_url = self._page_ws(self.endpoint)
            self.ws = connect(ws_url, max_size=64 * 1024 * 1024, open_timeout=10).__enter__()
            self.send("Page.enable")
            self.send("Runtime.enable")
            self.send("Network.enable")
            self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        except Exception:
            self.close()
            raise

    def _devtools_port(self, profile: Path, timeout: float = 20) -> int:
        f = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CDPError(f"Chromium exited with code {self.proc.returncode}")
            if f.exists():
                lines = f.read_text().split()
                if lines and lines[0].isdigit():
                    return int(lines[0])
            time.sleep(0.05)
        raise CDPError("Chromium did not open its DevTools port")

    @staticmethod
    def _page_ws(endpoint: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                targets = requests.get(endpoint + "/json/list", timeout=2).json()
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise CDPError("no page target")

    # -- protocol ------------------------------------------------------------------------------

    def send(self, method: str, timeout: float = 30, **params: Any) -> dict:
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"{method}: no reply within {timeout} s")
            msg = json.loads(self.ws.recv(timeout=left))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise CDPError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def evaluate(self, expression: str, timeout: float = 30) -> Any:
        r = self.send("Runtime.evaluate", timeout=timeout, expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise CDPError(
                f"JS exception: {r['exceptionDetails'].get('text')} {r['exceptionDetails'].get('exception', {}).get('description', '')}"
            )
        return r.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30, interval: float = 0.25) -> Any:
        """Poll a JS expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = self.evaluate(expression)
            except CDPError as exc:
                last = exc
            if last and not isinstance(last, CDPError):
                return last
            time.sleep(interval)
        raise CDPError(f"timed out after {timeout} s waiting for {expression!r} (last: {last!r})")

    def set_cookies(self, url: str, cookies: dict[str, str]) -> None:
        self.send("Network.setCookies", cookies=[{"name": k, "value": v, "url": url} for k, v in cookies.items()])

    def navigate(self, url: str, timeout: float = 30) -> None:
        r = self.send("Page.navigate", url=url, timeout=timeout)
        if r.get("errorText"):
            raise CDPError(f"navigate {url}: {r['errorText']}")
        self.wait_for("document.readyState === 'complete'", timeout=timeout)

    def screenshot(self, path: Path) -> Path:
        r = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False, timeout=60)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(r["data"]))
        return path

    def console_messages(self) -> list[str]:
        out = []
        for e in self.events:
            if e.get("method") == "Runtime.consoleAPICalled":
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"].get("args", [])))
            elif e.get("method") == "Runtime.exceptionThrown":
                out.append("EXCEPTION " + json.dumps(e["params"].get("exceptionDetails", {}))[:500])
        return out

    def close(self) -> None:
        try:
            ws = getattr(self, "ws", None)
            if ws is not None:
                ws.close()
        except Exception:
            pass
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
