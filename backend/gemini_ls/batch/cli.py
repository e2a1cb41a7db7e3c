"""`gemini-ls prelabel --project ID --batch` (`gemini-ls jobs` lists, shows and cancels it with every
other job: jobs/prelabel.py, jobs/cancel.py).

Label Studio URL and key come from the server's env (LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY) or
--url / --api-key. The job's state is in Redis (REDIS_URL): run the same command again after a
crash, or with --no-wait now and again later, and it picks up where it was: the job is a record
of the one job store (jobs/state.py), id `batch:PROJECT:VERSION`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from ..settings import Settings

if TYPE_CHECKING:
    from ..jobs.records import BatchState


def add_batch_options(pre: Any) -> None:
    """The Batch API options of `gemini-ls prelabel` (the command itself is jobs/prelabel.py's)."""
    pre.add_argument("--batch", action="store_true", help="through the Gemini Batch API (asynchronous, 50%% of the price)")
    pre.add_argument("--source", choices=("auto", "inline", "file"), default="auto",
                     help="--batch: inlined requests or a JSONL file (auto: inline under GEMINI_BATCH_INLINE_LIMIT_BYTES)")
    pre.add_argument("--no-sync-retry", action="store_true", help="--batch: report requests the batch failed instead of retrying them")
    pre.add_argument("--max-rounds", type=int, default=3, help="--batch: batches to try for what is still missing (default 3)")
    pre.add_argument("--chunk", type=int, default=100, help="--batch: predictions per write to Label Studio (default 100)")


_STARTED = time.monotonic()


def _say(msg: str) -> None:
    sys.stderr.write(f"[{time.monotonic() - _STARTED:7.1f}s] {msg}\n")
    sys.stderr.flush()


def prelabel(args: argparse.Namespace, settings: Settings) -> int:
    from ..gemini.fewshot import FewShotWire
    from ..gemini.files import FilesManager
    from ..jobs.batchhold import BatchHold
    from ..jobs.context import make_claims
    from ..labelconfig import parse_label_config
    from ..labelstudio import LabelStudioApi, LabelStudioAuth, LabelStudioProject, PredictionWriter
    from ..pipeline import build_pipeline
    from ..review.loop import build_review
    from .job import BatchPrelabel, JobOptions

    url = (args.url or settings.label_studio_url or "").rstrip("/")
    key = args.api_key or settings.label_studio_api_key
    if not url or not key:
        _say("gemini-ls prelabel: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (or --url / --api-key)")
        return 2
    settings = settings.with_(label_studio_url=url, label_studio_api_key=key)
    try:
        api = LabelStudioApi(LabelStudioAuth(url, key), timeout=settings.writeback_timeout)
    except ValueError as exc:
        _say(f"gemini-ls prelabel: {exc}")
        return 2
    # one write policy with the other jobs: WRITEBACK_ATTEMPTS attempts, check-before-write
    writer = PredictionWriter(api, chunk=args.chunk, attempts=settings.writeback_attempts)
    project = LabelStudioProject(api, args.project)
    pipeline = build_pipeline(settings)
    settings = pipeline.settings  # with the emulator's URL and key when it stands in for Gemini
    try:
        # the server's effective spec and derivation, with what the review loop learned for the project (when on)
        learner = build_review(settings, pipeline.credentials, pipeline.metrics, pipeline.few_shot).learner
        spec = learner.state(int(args.project)).applied(parse_label_config(project.label_config(), settings.defaults))
        version = pipeline.model_version(spec)
        store = _store(settings, args.project, version)
        gateway = pipeline.gateway
        assert gateway is not None  # build_pipeline refused an unconfigured Gemini
        client = gateway.files.client
        files = FilesManager(client, pipeline.cache, settings.with_(files_policy="always"), pipeline.metrics)
        wire = FewShotWire(files, settings, pipeline.metrics) if gateway.fewshot is not None else None
        job = BatchPrelabel(
            predictor=pipeline.runner.predictor, files=files, client=client, store=store, project=project,
            hold=BatchHold(make_claims(settings), int(args.project), version, writer), spec=spec,
            model_version=version, fetch=pipeline.fetch, echo=_say, few_shot=pipeline.few_shot, fewshot_wire=wire,
            options=JobOptions(mode=args.source, sync_retry=not args.no_sync_retry, max_rounds=args.max_rounds,
                               chunk=args.chunk),
        )
        report = job.run(wait=not args.no_wait, force=args.force)
    finally:
        pipeline.close()
    _say(f"{report.job}: {report.state}; {report.written} of {report.tasks} task(s) written, "
         f"{len(report.failed)} failed, {report.elsewhere} left to another job or click, "
         f"{report.sync_retried} retried synchronously, {report.seconds:.1f} s")
    _say(f"cost: {report.cost.describe()}")
    for reason, count in sorted(report.failures_by_reason().items()):
        _say(f"  failed ({reason}): {count}")
    for tid, why in sorted(report.failed.items())[:20]:
        _say(f"  task {tid}: {why}")
    if report.state == "waiting":
        _say(f"still running; follow it with `gemini-ls jobs {report.job}` or run this command again")
    return 1 if report.failed else 0


def _store(settings: Settings, project: int | str, version: str) -> BatchState:
    from ..jobs.context import make_store
    from ..jobs.memstore import MemoryBatchState
    from ..jobs.state import RedisJobStore

    store = make_store(settings)
    if isinstance(store, RedisJobStore):
        return store.batch(project, version)
    _say("REDIS_URL is not set: this job's state lives in this process only; a restart starts it afresh")
    return MemoryBatchState(project, version)
