"""`gemini-ls serve` with REDIS_URL works the job queue itself: one `gemini-ls worker` child.

The child is a separate process (RQ workers own their process's signals and main thread, which
gunicorn's workers cannot give away); it is stopped with the server. SERVE_WORKER=false or
`serve --no-worker` leaves the queue to dedicated `gemini-ls worker` processes.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import subprocess
import sys

from ..settings import Settings

log = logging.getLogger("gemini_ls.jobs")


def start_embedded_worker(settings: Settings, *, disabled: bool = False) -> subprocess.Popen | None:
    if not settings.redis_url:
        from .queue import IN_PROCESS

        log.info("jobs: no REDIS_URL, background work runs on the %s", IN_PROCESS)
        return None
    if disabled or not settings.serve_worker:
        log.info("jobs: this server does not work the queue (SERVE_WORKER=false / --no-worker); run gemini-ls worker")
        return None
    proc = subprocess.Popen([sys.executable, "-m", "gemini_ls.cli", "worker"], env=dict(os.environ), stdin=subprocess.DEVNULL)
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
