"""One process's job machinery, built once from Settings: backend, claims, job store, Label Studio API."""

from __future__ import annotations

from typing import Any

from ..labelstudio import LabelStudioApi
from ..settings import Settings
from .claims import Claims, MemoryClaims, RedisClaims
from .state import JobStore, MemoryJobStore, RedisJobStore


def make_claims(settings: Settings, client: Any = None) -> Claims:
    if not settings.redis_url:
        return MemoryClaims()
    from .queue import redis_client

    return RedisClaims(client or redis_client(settings), settings.redis_prefix)


def make_store(settings: Settings, client: Any = None) -> JobStore:
    if not settings.redis_url:
        return MemoryJobStore()
    from .queue import redis_client

    return RedisJobStore(client or redis_client(settings), settings.redis_prefix)


def api_from(backend: Any) -> LabelStudioApi | None:
    auth = backend.credentials.current()
    return LabelStudioApi(auth, timeout=backend.settings.writeback_timeout) if auth is not None else None


def build_executor(settings: Settings, backend: Any = None, store: JobStore | None = None, claims: Claims | None = None,
                   api: LabelStudioApi | None = None):
    from ..backend import build_backend
    from .work import ChunkExecutor

    backend = backend or build_backend(settings)
    return ChunkExecutor(backend, store or make_store(settings), claims or make_claims(settings), api or api_from(backend))
