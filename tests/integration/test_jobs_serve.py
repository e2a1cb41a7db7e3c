"""`gemini-ls serve` with REDIS_URL works the job queue itself (one embedded `gemini-ls worker`),
unless told not to; `gemini-ls worker` without Redis refuses with a clear message."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import redis
from rq import Worker

from tests.e2e.helpers import GEMINI_LS_BIN, start_backend_process
from tests.fixtures.processes import group_alive


def _workers(url: str) -> list[Worker]:
    return Worker.all(connection=redis.Redis.from_url(url))


def _serve_with_worker(name: str, emulator, redis_url: str, redis_prefix: str, before: set[str]):
    """`gemini-ls serve` on Redis, returned once its embedded worker is registered with RQ."""
    env = {"GEMINI_BASE_URL": emulator.url, "GEMINI_API_KEY": "emulator-key", "REDIS_URL": redis_url,
           "REDIS_PREFIX": redis_prefix, "WORKERS": "1"}
    bp = start_backend_process(name, env)
    try:
        bp.wait_log(r"started an embedded gemini-ls worker", timeout=20)
        end = time.monotonic() + 30
        while time.monotonic() < end and not ({w.name for w in _workers(redis_url)} - before):
            time.sleep(0.3)
    except BaseException:
        bp.stop()
        raise
    return bp


def test_serve_starts_one_worker_and_stops_it(emulator, redis_url, redis_prefix):
    before = {w.name for w in _workers(redis_url)}
    bp = _serve_with_worker("serve-embedded-worker", emulator, redis_url, redis_prefix, before)
    try:
        mine = [w for w in _workers(redis_url) if w.name not in before]
        assert len(mine) == 1 and mine[0].queue_names() == [f"{redis_prefix}jobs"]
    finally:
        bp.stop()


def test_serve_no_worker(emulator, redis_url, redis_prefix):
    env = {"GEMINI_BASE_URL": emulator.url, "GEMINI_API_KEY": "emulator-key", "REDIS_URL": redis_url,
           "REDIS_PREFIX": redis_prefix, "SERVE_WORKER": "false"}
    bp = start_backend_process("serve-no-worker", env)
    try:
        bp.wait_log(r"does not work the queue", timeout=20)
    finally:
        bp.stop()


def test_worker_without_redis_says_why():
    out = subprocess.run([str(GEMINI_LS_BIN), "worker"], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", "GEMINI_API_KEY": "k-never-used-123456"})
    assert out.returncode == 2 and "needs REDIS_URL" in out.stderr, out.stderr


def test_a_killed_server_leaves_no_worker_behind(emulator, redis_url, redis_prefix):
    """The leak: a `gemini-ls serve` whose master dies (SIGKILL) left its embedded worker running
    on the queue. The worker notices and shuts down; the test helper stops the whole group anyway."""
    bp = _serve_with_worker("serve-killed-master", emulator, redis_url, redis_prefix, {w.name for w in _workers(redis_url)})
    try:
        worker_pid = int(re.search(r"embedded gemini-ls worker \(pid (\d+)\)", bp.log_text()).group(1))
        os.kill(bp.process.pid, signal.SIGKILL)  # the master only, as an OOM kill would
        bp.process.wait(timeout=10)
        end = time.monotonic() + 20
        while time.monotonic() < end and _alive(worker_pid):
            time.sleep(0.2)
        assert not _alive(worker_pid), "the embedded worker outlived its server"
        assert "is gone; shutting down" in bp.log_text()
    finally:
        bp.stop()
    assert not group_alive(bp.process.pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
