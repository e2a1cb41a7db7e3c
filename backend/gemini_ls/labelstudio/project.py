"""One project as a Batch API job reads and writes it (batch/job.py's `ProjectIO`): its label
config, its tasks with the versions they hold (tasks.py), and chunks of predictions written with
the check-before-write of predictions.py, raising when a chunk cannot be written (the job is
resumable: run it again and it skips what Label Studio holds)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .client import LabelStudioApi
from .predictions import PredictionRecord, PredictionWriter
from .tasks import project_tasks


class LabelStudioProject:
    def __init__(self, api: LabelStudioApi, project_id: int, *, writer: PredictionWriter | None = None,
                 page_size: int = 100) -> None:
        self.api = api
        self.project_id = project_id
        self.page_size = page_size
        self.writer = writer or PredictionWriter(api)

    def label_config(self) -> str:
        return self.api.label_config(self.project_id)

    def tasks(self) -> Iterator[dict]:
        """`{"id", "data", "model_versions"}` per task, paged."""
        return project_tasks(self.api, self.project_id, page_size=self.page_size)

    def write(self, predictions: Sequence[Mapping[str, Any]]) -> None:
        """`predictions`: /predict result entries with their "task" (chunked by the writer's `chunk`)."""
        records = [PredictionRecord.from_payload(p) for p in predictions]
        if records:
            self.writer.write_all(self.project_id, records)
