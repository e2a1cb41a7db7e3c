"""Label Studio's annotation webhooks -> matched outcomes -> the durable ledger.

Our prediction for the task is read back from Label Studio through labelstudio/ (GET
/api/predictions?task=ID; the annotation too when the webhook carries no payload), the source of
truth: it works after a restart, across gunicorn workers and replicas, and for predictions written
by jobs rather than by this process. Ours are the predictions whose
model_version starts with "gemini-ls-"; when an annotation names its `parent_prediction` and that
is ours, that one is compared, else our newest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import redis
from prometheus_client import generate_latest

from ..labelstudio import LabelStudioApiError
from .collector import review_registry
from .ledger import Ledger, contribution
from .match import match_regions

log = logging.getLogger("gemini_ls.review")

OUR_PREFIX = "gemini-ls-"
CREATED_OR_UPDATED = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")
DELETED = ("ANNOTATIONS_DELETED", "ANNOTATION_DELETED")


class Reader(Protocol):
    """What the webhook reads from Label Studio (`labelstudio.LabelStudioApi` over the server's
    credentials); raises LabelStudioApiError when Label Studio cannot answer."""

    def predictions(self, task_id: int) -> list[dict]: ...
    def annotation(self, annotation_id: int) -> dict: ...


def is_ours(prediction: Mapping[str, Any]) -> bool:
    return str(prediction.get("model_version") or "").startswith(OUR_PREFIX)


def our_prediction(predictions: Sequence[Mapping[str, Any]], parent: Any = None) -> Mapping[str, Any] | None:
    ours = [p for p in predictions if is_ours(p)]
    for p in ours:
        if parent is not None and p.get("id") == parent:
            return p
    return max(ours, key=lambda p: int(p.get("id") or 0), default=None)


def _int(v: Any) -> int | None:
    if isinstance(v, Mapping):
        v = v.get("id")
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


class ReviewService:
    """Applies one webhook body to the ledger; returns a summary for the HTTP answer."""

    def __init__(self, ledger: Ledger, reader: Reader, metrics: Any = None) -> None:
        self.ledger = ledger
        self.reader = reader
        self.metrics = metrics
        self._registry = review_registry(ledger)

    def metrics_text(self) -> bytes:
        return generate_latest(self._registry)

    def _count_error(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.review_errors.labels(reason).inc()

    def handle(self, body: Mapping[str, Any]) -> dict:
        try:
            return self._handle(body)
        except redis.RedisError as exc:  # the ledger's Redis is away (redis-py wraps socket errors; requests' are OSErrors too)
            self._count_error("ledger")
            log.warning("webhook %s: the review ledger is unavailable (%s); `gemini-ls report` still counts it from Label Studio",
                        body.get("action"), exc)
            return {"verdict": None, "error": "review ledger unavailable"}

    def _handle(self, body: Mapping[str, Any]) -> dict:
        action = str(body.get("action"))
        if action in DELETED:
            items = body.get("annotations") or body.get("annotation") or []
            items = items if isinstance(items, list) else [items]
            removed = 0
            for item in items:
                aid = _int(item)
                if aid is not None and self.ledger.replace(aid, None) is not None:
                    removed += 1
            log.info("webhook %s: %d annotation(s), %d contribution(s) removed", action, len(items), removed)
            return {"removed": removed}
        if action not in CREATED_OR_UPDATED:
            log.info("webhook %s received", action)
            return {}
        annotations = body.get("annotation")
        annotations = annotations if isinstance(annotations, list) else [annotations]
        tasks = body.get("task")
        tasks = tasks if isinstance(tasks, list) else [tasks]
        project = _int(body.get("project"))
        summaries = []
        for i, annotation in enumerate(a for a in annotations if isinstance(a, Mapping)):
            task = tasks[i] if i < len(tasks) else None
            summaries.append(self._one(action, annotation, task, project))
        return summaries[0] if len(summaries) == 1 else {"annotations": summaries}

    def _one(self, action: str, annotation: Mapping[str, Any], task: Any, project: int | None) -> dict:
        aid = _int(annotation.get("id"))
        task_id = _int(annotation.get("task")) or _int(task)
        if aid is None or task_id is None:
            return {"verdict": None, "error": "annotation without id or task"}
        try:
            if not isinstance(annotation.get("result"), list):  # a webhook without payload
                annotation = self.reader.annotation(aid)
            predictions = self.reader.predictions(task_id)
        except LabelStudioApiError as exc:
            self._count_error("label_studio")
            log.warning("webhook %s: annotation %s for task %s: cannot read Label Studio: %s", action, aid, task_id, exc)
            return {"task": task_id, "verdict": None, "error": str(exc)}
        project = _int(annotation.get("project")) or (_int(task.get("project")) if isinstance(task, Mapping) else None) or project
        result = annotation.get("result") or []
        pred = our_prediction(predictions, annotation.get("parent_prediction"))
        if annotation.get("was_cancelled") or pred is None or project is None:
            self.ledger.replace(aid, None)
            why = "skipped by the annotator" if annotation.get("was_cancelled") else "no prediction of ours"
            log.info("webhook %s: annotation %s for task %s (%d regions); %s", action, aid, task_id, len(result), why)
            return {"task": task_id, "regions": len(result), "verdict": None}
        outcomes = match_regions(pred.get("result") or [], result)
        c = contribution(aid, project, task_id, str(pred.get("model_version")), outcomes)
        self.ledger.replace(aid, c)
        verdict = {k: v for k, v in c.tally.total().as_dict().items() if k in ("accepted", "adjusted", "relabelled", "deleted", "missed")}
        log.info("webhook %s: annotation %s for task %s: %s (model_version %s)", action, aid, task_id, verdict, c.model_version)
        return {"task": task_id, "regions": len(result), "verdict": verdict, "model_version": c.model_version}
