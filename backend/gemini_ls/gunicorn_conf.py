"""gunicorn settings and hooks for gemini-ls.

Loaded by backend/docker-entrypoint.sh with `--config python:gemini_ls.gunicorn_conf`; the flags on that
command line (workers, threads, bind, log level, logs) take precedence over anything here. This module
holds what a flag cannot express: the worker timeout derived from PREDICT_TIMEOUT and the
prometheus_client multiprocess hooks. gunicorn ignores names it does not know, so settings that only
newer gunicorn releases have are safe here, where a command-line flag would fail on an older one.
"""

from __future__ import annotations

import math
import os

# A worker that does not answer for `timeout` seconds is killed and restarted. One /predict may take up
# to PREDICT_TIMEOUT (default 90 s) before the backend answers with what it has, so keep a margin above it.
# GUNICORN_TIMEOUT overrides the derived value.
_MIN_TIMEOUT = 120
_MARGIN = 30


def _timeout(env=os.environ) -> int:
    raw = (env.get("GUNICORN_TIMEOUT") or "").strip()
    if raw:
        return int(raw)
    try:
        predict = float((env.get("PREDICT_TIMEOUT") or "").strip() or 90.0)
    except ValueError:
        predict = 90.0  # Settings.from_env reports the bad value with a proper message
    return max(_MIN_TIMEOUT, math.ceil(predict) + _MARGIN)


timeout = _timeout()

# gunicorn >= 25 opens a control socket at ~/.gunicorn/gunicorn.ctl by default: two servers on one
# machine (tests, a developer's shell) would fight over that path. We do not use it.
control_socket_disable = True

# Worker heartbeat files: on a container's overlay filesystem /tmp writes can stall; /dev/shm is memory.
if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
    worker_tmp_dir = "/dev/shm"


def _multiproc_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _log_gemini_choice() -> None:
    """Once per server, in the master: every worker builds its own app, and the error that Gemini is
    not configured (no key, no GEMINI_EMULATOR=embedded) must be said once, not once per worker."""
    from .logsetup import configure_logging
    from .settings import Settings, SettingsError, log_gemini_choice

    try:
        settings = Settings.from_env()
    except SettingsError:
        return  # the workers stop on it with the variable's name
    configure_logging(settings.log_level)
    log_gemini_choice(settings)


def on_starting(server) -> None:
    """Master, before any worker exists: what answers as Gemini, said once; then drop metric files
    left by an earlier run (they would be added to this run's totals). docker-entrypoint.sh does the
    same; this covers a bare `gunicorn -c ...`."""
    _log_gemini_choice()
    path = _multiproc_dir()
    if not path:
        return
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            try:
                os.unlink(os.path.join(path, name))
            except FileNotFoundError:
                pass


def child_exit(server, worker) -> None:
    """Master, after a worker exited: its live gauges no longer count (counters and histograms keep
    their totals, which is what a restart should do)."""
    if not _multiproc_dir():
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
