#!/bin/sh
# gemini-ls container entrypoint: the ONE place where the server command lives.
#
#   docker-entrypoint.sh                 -> gunicorn serving gemini_ls.wsgi:app (the default)
#   docker-entrypoint.sh CMD [ARGS...]   -> exec CMD ARGS (e.g. `gemini-ls emulator --host 0.0.0.0 --port 8765`)
#
# The Dockerfile's ENTRYPOINT is this script and tests/integration/test_entrypoint.py runs this very
# file outside Docker (same environment variables, other port and directories), so keep both in sync
# by changing only this file.
#
# Environment (all optional; the backend's own settings are read by gemini_ls.settings.Settings.from_env):
#   HOST (0.0.0.0)  PORT (9090)  WORKERS (1)  THREADS (8)  LOG_LEVEL (INFO)
#   GUNICORN_TIMEOUT (default max(120, PREDICT_TIMEOUT + 30) s, computed in gemini_ls/gunicorn_conf.py:
#     a worker silent for longer is killed, so it must stay above PREDICT_TIMEOUT)
#   GUNICORN_GRACEFUL_TIMEOUT (30 s: time given to in-flight requests on SIGTERM)
#   PROMETHEUS_MULTIPROC_DIR (a private temporary directory): prometheus_client's multiprocess
#     directory, so that /metrics adds all workers up. It must be set before Python starts, which is
#     why it is exported here; gemini_ls.gunicorn_conf empties it when gunicorn starts (stale files
#     from a previous run would be counted again) and marks exited workers dead.
set -eu

if [ "$#" -gt 0 ]; then
    exec "$@"
fi

if [ -z "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    PROMETHEUS_MULTIPROC_DIR="$(mktemp -d "${TMPDIR:-/tmp}/gemini-ls-metrics.XXXXXX")"
fi
export PROMETHEUS_MULTIPROC_DIR
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

exec gunicorn \
    --config python:gemini_ls.gunicorn_conf \
    --worker-class gthread \
    --workers "${WORKERS:-1}" \
    --threads "${THREADS:-8}" \
    --bind "${HOST:-0.0.0.0}:${PORT:-9090}" \
    --graceful-timeout "${GUNICORN_GRACEFUL_TIMEOUT:-30}" \
    --log-level "${LOG_LEVEL:-info}" \
    --access-logfile - \
    --error-logfile - \
    gemini_ls.wsgi:app
