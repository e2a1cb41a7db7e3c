"""`gemini-ls jobs [ID] | jobs cancel ID`: every job of the one job store (state.py) in one table,
whatever runs it (RQ chunks, a click's remainder, the Batch API), read by the jobs page's own
functions (web/commands.py); cancel works for every kind (cancel.py) and releases the job's claims."""

from __future__ import annotations

import argparse
import sys

from ..settings import Settings
from .prelabel import UsageError
from .records import BATCH
from .state import RedisJobStore

USAGE = "usage: gemini-ls jobs [ID] | gemini-ls jobs cancel ID"


def _store(settings: Settings) -> RedisJobStore:
    from .context import make_store

    store = make_store(settings)
    assert isinstance(store, RedisJobStore)  # REDIS_URL is set
    return store


def run_jobs(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.redis_url:
        raise UsageError("gemini-ls jobs reads the job store in Redis: set REDIS_URL")
    from ..web.commands import show_jobs  # list and show: GET /api/jobs and /api/jobs/<id>'s own functions

    words = list(args.words)
    if words and words[0] == "cancel":
        if len(words) != 2:
            raise UsageError(USAGE)
        return _cancel(settings, _store(settings), words[1])
    if len(words) > 1:
        raise UsageError(USAGE)
    return show_jobs(settings, words[0] if words else None, as_json=args.json)


def _cancel(settings: Settings, store: RedisJobStore, ident: str) -> int:
    from .cancel import batches_api, cancel

    if ident.startswith("batches/"):  # one Batch API job by its name (made outside, or of a lost record)
        batches_api(settings).cancel(name=ident)
        sys.stderr.write(f"cancelled {ident}\n")
        return 0
    report = cancel(settings, store, ident)
    if report is None:
        sys.stderr.write(f"gemini-ls jobs: {ident!r} is neither a job id (`gemini-ls jobs` lists them) "
                         "nor a Batch API job name (batches/...)\n")
        return 2
    for name in report.batches:
        sys.stderr.write(f"cancelled {name}\n")
    sys.stderr.write(f"{ident}: cancelled ({report.kind}; {report.chunks} queued chunk(s) dropped, "
                     f"{report.released} claim(s) released)"
                     + ("; `gemini-ls prelabel --batch` will not resubmit it" if report.kind == BATCH else "") + "\n")
    return 0
