"""One process's job machinery, built once from Settings: claims, job store, Label Studio API, and
a worker's chunk executor (a pipeline of its own and the review loop's learner, nothing of the
server). It imports neither queue.py (which builds the executor here) nor the server's wiring."""

from __future__ import annotations

import redis

from .. import redisconn
from ..labelstudio import CredentialStore, LabelStudioApi
from ..redisconn import JOB
from ..settings import Settings
from .budget import Budget, MemoryBudget, RedisBudget
from .claims import Claims, MemoryClaims, RedisClaims
from .memstore import process_store
from .records import JobStore
from .state import RedisJobStore
from .work import ChunkExecutor


def make_claims(settings: Settings, client: redis.Redis | None = None) -> Claims:
    if not settings.redis_url:
        return MemoryClaims()
    return RedisClaims(client or redisconn.client(settings.redis_url, JOB), settings.redis_prefix)


def make_store(settings: Settings, client: redis.Redis | None = None) -> JobStore:
    if not settings.redis_url:
        return process_store()  # this process's jobs, the ones its page lists
    return RedisJobStore(client or redisconn.client(settings.redis_url, JOB), settings.redis_prefix)


_memory_budget: MemoryBudget | None = None


def make_budget(settings: Settings, client: redis.Redis | None = None) -> Budget:
    """Jobs' spend and caps (budget.py); without Redis one per process, shared by its executor and command."""
    global _memory_budget
    if not settings.redis_url:
        if _memory_budget is None:
            _memory_budget = MemoryBudget(settings.price_overrides)
        return _memory_budget
    return RedisBudget(client or redisconn.client(settings.redis_url, JOB), settings.redis_prefix, settings.price_overrides)


def api_from(settings: Settings, credentials: CredentialStore) -> LabelStudioApi | None:
    auth = credentials.current()
    return LabelStudioApi(auth, timeout=settings.writeback_timeout) if auth is not None else None


def build_executor(settings: Settings, store: JobStore | None = None, claims: Claims | None = None,
                   api: LabelStudioApi | None = None) -> ChunkExecutor:
    from ..pipeline import build_pipeline
    from ..review.loop import build_review
    from .outcomes import make_outcomes

    pipeline = build_pipeline(settings, make_outcomes(settings))
    review = build_review(pipeline.settings, pipeline.credentials, pipeline.metrics, pipeline.few_shot)
    return ChunkExecutor(pipeline, review.learner, store or make_store(settings), claims or make_claims(settings),
                         api or api_from(pipeline.settings, pipeline.credentials), budget=make_budget(settings))

