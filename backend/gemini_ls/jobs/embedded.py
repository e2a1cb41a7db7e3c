"""`gemini-ls serve` with REDIS_URL works the job queue itself: one `gemini-ls worker` child.

The child is a separate process (RQ workers own their process's signals and main thread, which
gunicorn's workers cannot give away); it is stopped with the server, and when the server dies
without stopping it (SIGKILL, OOM) it notices its parent is gone and shuts down warmly (its
current chunk finishes) instead of running on as an orphan. SERVE_WORKER=false or
`serve --no-worker` leaves the queue to dedicated `gemini-ls worker` processes.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from ..settings import Settings

log = logging.getLogger("gemini_ls.jobs")

PARENT_ENV = "GEMINI_LS_EMBEDDED_PARENT"  # internal: set for the child only, never by a user


def watch_parent(poll: float = 1.0) -> None:
    """In the embedded worker: SIGTERM ourselves (RQ's warm shutdown) once the server that started
    us is gone (we are re-parented, so getppid() changes)."""
    raw = os.environ.get(PARENT_ENV)
    if not raw or not raw.isdigit():
        return
    parent = int(raw)

    def run() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        log.warning("jobs: the gemini-ls serve that started this worker (pid %d) is gone; shutting down", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=run, name="parent-watch", daemon=True).start()


def start_embedded_worker(settings: Settings, *, disabled: bool = False) -> subprocess.Popen | None:
    if not settings.redis_url:
        from .queue import IN_PROCESS

        log.info("jobs: no REDIS_URL, background work runs on the %s", IN_PROCESS)
        return None
    if not settings.gemini_configured:
        # a worker would refuse to start (no key, no GEMINI_EMULATOR=embedded); the server says why
        log.info("jobs: no embedded worker: Gemini is not configured")
        return None
    if disabled or not settings.serve_worker:
        log.info("jobs: this server does not work the queue (SERVE_WORKER=false / --no-worker); run gemini-ls worker")
        return None
    env = {**os.environ, PARENT_ENV: str(os.getpid())}
    proc = subprocess.Popen([sys.executable, "-m", "gemini_ls.cli", "worker"], env=env, stdin=subprocess.DEVNULL)
    log.info("jobs: started an embedded gemini-ls worker (pid %d) on the RQ queue", proc.pid)

    def stop() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()

    atexit.register(stop)
    return proc
