"""The ledger on /metrics, read at scrape time (so every worker shows the same shared numbers).

Cardinality is bounded: at most MAX_PROJECTS projects, the MAX_VERSIONS most recently changed
model_versions per project, and the MAX_LABELS labels with the most regions per version; the rest
are summed under label="other".
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .ledger import Ledger
from .stats import COUNT_FIELDS, LabelStats

log = logging.getLogger("gemini_ls.review")

MAX_PROJECTS = 20
MAX_VERSIONS = 3
MAX_LABELS = 30


class ReviewCollector(Collector):
    def __init__(self, ledger: Ledger, max_labels: int = MAX_LABELS) -> None:
        self.ledger = ledger
        self.max_labels = max_labels

    def collect(self) -> Iterator[GaugeMetricFamily]:
        regions = GaugeMetricFamily(
            "gemini_ls_review_regions",
            "Annotators' verdict on our regions (accepted, adjusted, relabelled, deleted, missed, relabelled_in), "
            "per project, model_version and label; idempotent per annotation",
            labels=["project", "model_version", "label", "outcome"],
        )
        annotations = GaugeMetricFamily(
            "gemini_ls_review_annotations", "Annotations compared with our prediction", labels=["project", "model_version"]
        )
        try:
            for project in self.ledger.projects()[-MAX_PROJECTS:]:
                for version in self.ledger.versions(project)[:MAX_VERSIONS]:
                    t = self.ledger.totals(project, version)
                    annotations.add_metric([str(project), version], t.annotations)
                    ranked = sorted(t.labels.items(), key=lambda kv: (-kv[1].predicted - kv[1].missed, kv[0]))
                    kept = ranked[: self.max_labels]
                    other = LabelStats()
                    for _, s in ranked[self.max_labels :]:
                        other = other.plus(s)
                    if ranked[self.max_labels :]:
                        kept.append(("other", other))
                    for label, s in kept:
                        for f in COUNT_FIELDS:
                            regions.add_metric([str(project), version, label, f], getattr(s, f))
        except (redis.RedisError, OSError) as exc:  # Redis down: /metrics still answers with everything else
            log.warning("review metrics unavailable: %s", exc)
        yield regions
        yield annotations


def review_registry(ledger: Ledger) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReviewCollector(ledger))
    return registry
