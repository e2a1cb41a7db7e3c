"""Shared pieces of the jobs e2e tests: a project of N url tasks, Label Studio read-backs, a worker
process, and a loopback fault proxy in front of Label Studio."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from gemini_ls.emulator.scenes import encode_image, make_scene
from tests.fixtures.labelstudio import ARTIFACTS
from tests.fixtures.processes import register, stop_group

from .helpers import GEMINI_LS_BIN
from .project import RECT_CONFIG


def url_project(ls, images, backend_url: str | None, title: str, n: int, config: str = RECT_CONFIG) -> tuple[int, list[int]]:
    """A rectangles-only project of `n` url tasks (a few distinct scenes, each task its own URL)."""
    pid = ls.create_project(title, config)["id"]
    bodies = [encode_image(make_scene(320, 240, names=["red square", "blue circle"], seed=s).image, "png") for s in range(4)]
    slug = f"p{pid}"
    tasks = [{"image": images.add(f"{slug}/{i}.png", bodies[i % len(bodies)], "image/png")} for i in range(n)]
    ids: list[int] = []
    for i in range(0, n, 500):
        r = ls.request("POST", f"/api/projects/{pid}/import", json=tasks[i : i + 500], expect=201)
        assert r.json()["task_count"] == len(tasks[i : i + 500]), r.text
    ids = sorted(t["id"] for t in ls.tasks(pid))
    assert len(ids) == n
    if backend_url:
        ls.connect_ml_backend(pid, backend_url, title="gemini")
    return pid, ids


def version_counts(ls, pid: int) -> dict[str, int]:
    return ls.get(f"/api/projects/{pid}/model-versions/")


def predictions_per_task(ls, pid: int, version: str) -> dict[int, int]:
    """task id -> number of predictions of `version` (every task of the project, 0 included)."""
    counts = {t["id"]: 0 for t in ls.tasks(pid)}
    body = ls.get(f"/api/predictions?project={pid}")  # Label Studio 1.23: one unpaged list
    for p in body["results"] if isinstance(body, dict) else body:
        if p["model_version"] == version:
            counts[p["task"]] = counts.get(p["task"], 0) + 1
    return counts


def exactly_one_each(ls, pid: int, ids: list[int]) -> str:
    """Every task of the project holds exactly one prediction of the one model_version there is; returns it."""
    versions = {v: n for v, n in version_counts(ls, pid).items() if n}  # the ML backend's title is listed with 0
    assert len(versions) == 1, versions
    (version,) = versions
    per_task = predictions_per_task(ls, pid, version)
    assert set(per_task) == set(ids)
    assert sorted(set(per_task.values())) == [1], {t: n for t, n in per_task.items() if n != 1}
    return version


def wait_until(check, timeout: float, interval: float = 0.5, what: str = "condition"):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s (last: {last})")


@dataclass
class Proc:
    name: str
    process: subprocess.Popen
    log_path: Path
    home: str

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """`sig` to the whole group; SIGKILL to what is left after a grace period (an RQ worker's
        warm shutdown waits for its job); returns when none of it is left, never raises."""
        stop_group(self.process.pid, self.process, sig=sig, grace=10.0)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def gemini_ls(name: str, args: list[str], env: dict[str, str], *, wait: bool = False, timeout: float = 600) -> Proc:
    """Run `gemini-ls <args>` as a subprocess with exactly `env` added to a clean environment."""
    log_path = ARTIFACTS / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_", "GOOGLE_", "LABEL_STUDIO_", "REDIS_"))}
    home = tempfile.mkdtemp(prefix=f"e2e-{name}-")
    full.update(PYTHONUNBUFFERED="1", LOG_LEVEL="INFO", HOME=home, **env)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(GEMINI_LS_BIN), *args], env=full, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    register(proc, f"gemini-ls {' '.join(args)} ({name})")
    p = Proc(name, proc, log_path, home)
    if wait:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError(f"gemini-ls {' '.join(args)} did not finish in {timeout} s:\n{p.log_text()[-3000:]}") from None
    return p


@dataclass
class FaultProxy:
    """A loopback HTTP proxy in front of Label Studio that answers 500, or hangs, on chosen requests.

    `rules`: list of [method, path-substring, fault, count]; fault "500" answers 500 without
    forwarding, "hang" forwards the request (so Label Studio may well store it) and then never
    answers. Count is decremented per hit. Everything else is forwarded as is.
    """

    target: str
    rules: list[list] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = owner._fault(self.command, self.path)
                if fault == "500":
                    payload = b'{"detail": "injected 500"}'
                    self.send_response(500)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
                r = requests.request(self.command, owner.target + self.path, data=body, headers=headers,
                                     allow_redirects=False, timeout=120)
                if fault == "hang":
                    time.sleep(3600)
                    return
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._lock = threading.Lock()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _fault(self, method: str, path: str) -> str | None:
        with self._lock:
            for rule in self.rules:
                m, sub, fault, count = rule
                if method == m and sub in path and count > 0:
                    rule[3] -= 1
                    self.hits[fault] = self.hits.get(fault, 0) + 1
                    return fault
        return None

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
