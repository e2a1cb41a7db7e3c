"""A click's remainder goes to the queue in chunks of several concurrency rounds (issue #22 item 11)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gemini_ls.jobs.claims import MemoryClaims, queued_owner, scope_of
from gemini_ls.jobs.memstore import MemoryJobStore
from gemini_ls.jobs.oneclick import HANDOFF_ROUNDS, Handoff, handoff_chunk
from gemini_ls.settings import Settings


class RecordingQueue:
    """Keeps the chunks it is given (the JobQueue protocol's submit, nothing run)."""

    def __init__(self) -> None:
        self.chunks: list[list[int]] = []

    def submit(self, job_id: str, chunks: Sequence[Sequence[Mapping[str, Any]]]) -> list[str]:
        self.chunks = [[int(t["id"]) for t in c] for c in chunks]
        return [f"rq-{i}" for i in range(len(chunks))]


def test_the_remainder_chunk_holds_several_rounds_never_less_than_job_chunk():
    assert handoff_chunk(Settings.from_env({"GEMINI_CONCURRENCY": "8", "JOB_CHUNK": "16"})) == HANDOFF_ROUNDS * 8
    assert handoff_chunk(Settings.from_env({"GEMINI_CONCURRENCY": "2", "JOB_CHUNK": "50"})) == 50


def test_not_started_tasks_first_in_big_chunks_running_ones_last_in_their_own():
    settings = Settings.from_env({"GEMINI_CONCURRENCY": "4", "JOB_CHUNK": "10"})  # chunks of 32
    claims, store, queue = MemoryClaims(), MemoryJobStore(), RecordingQueue()
    scope = scope_of(7, "v")
    claims.acquire(scope, list(range(1, 81)), "predict:click", 60)
    job_id = Handoff(settings, store, queue).submit(  # type: ignore[arg-type]
        claims, scope, 7, "v", "<View/>", "http://ls", "predict:click",
        [{"id": i} for i in range(1, 71)], [{"id": i} for i in range(71, 81)])
    assert [len(c) for c in queue.chunks] == [32, 32, 6, 10]
    assert queue.chunks[-1] == list(range(71, 81))
    held = claims.holders(scope, list(range(1, 81)))
    assert {held[i] for i in range(1, 71)} == {queued_owner(job_id)}  # the job's now
    assert {held[i] for i in range(71, 81)} == {"predict:click"}  # still finished by the click's process
    info = store.get(job_id)
    assert info is not None and info.total == 80 and info.handed_by == "predict:click"
