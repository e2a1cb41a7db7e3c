"""One project as a Batch API job reads it (batch/job.py's `ProjectIO`): its label config and its
tasks with the versions they hold (tasks.py). The job writes through jobs/batchhold.py (claims and
predictions.py's check-before-write), as every other job does."""

from __future__ import annotations

from collections.abc import Iterator

from .client import LabelStudioApi
from .tasks import project_tasks


class LabelStudioProject:
    def __init__(self, api: LabelStudioApi, project_id: int, *, page_size: int = 100) -> None:
        self.api = api
        self.project_id = project_id
        self.page_size = page_size

    def label_config(self) -> str:
        return self.api.label_config(self.project_id)

    def tasks(self) -> Iterator[dict]:
        """`{"id", "data", "model_versions"}` per task, paged."""
        return project_tasks(self.api, self.project_id, page_size=self.page_size)
