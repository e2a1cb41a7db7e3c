"""Label Studio as a batch job reads and writes it, through label-studio-sdk: the project's label
config, its tasks page by page (with the model versions of the predictions they hold), and
predictions written in chunks (POST /api/projects/{id}/import/predictions), retried with backoff
when Label Studio answers 5xx or not at all.

A chunk that timed out may have been stored anyway; before writing it again, the tasks that now
hold a prediction of the version are dropped from it, so a retry never makes a second prediction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger("gemini_ls.batch")

WRITE_ATTEMPTS = 5


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


class LabelStudioProject:
    def __init__(self, url: str, api_key: str, project_id: int, *, page_size: int = 100,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        from label_studio_sdk import LabelStudio

        self.client = LabelStudio(base_url=url, api_key=api_key, timeout=120)
        self.project_id = project_id
        self.page_size = page_size
        self._sleep = sleep

    def label_config(self) -> str:
        config = self.client.projects.get(id=self.project_id).label_config
        if not config:
            raise ValueError(f"project {self.project_id} has no label config")
        return str(config)

    def tasks(self) -> Iterator[dict]:
        pager: Any = self.client.tasks.list(project=self.project_id, fields="all", page_size=self.page_size)
        for task in pager:
            versions = {str(_get(p, "model_version")) for p in (_get(task, "predictions") or [])}
            yield {"id": _get(task, "id"), "data": _get(task, "data") or {}, "model_versions": versions}

    def versions_of(self, task_ids: list[int]) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for tid in task_ids:
            predictions = self.client.predictions.list(task=tid)
            out[tid] = {str(_get(p, "model_version")) for p in predictions}
        return out

    def write(self, predictions: list[dict]) -> None:
        from label_studio_sdk import PredictionRequest

        pending = predictions
        delay = 1.0
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                self.client.projects.import_predictions(id=self.project_id, request=[PredictionRequest(**p) for p in pending])
                return
            except Exception as exc:
                status = getattr(exc, "status_code", None)
                if status is not None and 400 <= int(status) < 500 and int(status) != 429:
                    raise
                if attempt == WRITE_ATTEMPTS:
                    raise
                log.warning("writing %d predictions failed (%s); retry %d in %.0f s", len(pending), status or type(exc).__name__,
                            attempt, delay)
                self._sleep(delay)
                delay = min(30.0, delay * 2)
                held = self.versions_of([int(p["task"]) for p in pending])
                pending = [p for p in pending if p["model_version"] not in held.get(int(p["task"]), set())]
                if not pending:
                    return
