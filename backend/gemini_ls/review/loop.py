"""Wiring of the review loop: the webhook's service and the learner, sharing one ledger."""

from __future__ import annotations

from dataclasses import dataclass

from ..labelstudio import CredentialStore, LabelStudioApi
from ..labelstudio.client import READ_TIMEOUT
from ..metrics import Metrics
from ..settings import Settings
from .fewshot import ExampleSource, FewShotBook
from .learning import LearnedState, Learner
from .ledger import make_ledger
from .webhook import ReviewService


@dataclass(frozen=True)
class ReviewLoop:
    service: ReviewService  # the webhook: annotations against our predictions, into the ledger
    learner: Learner  # what the ledger teaches (REVIEW_LEARN, FEW_SHOT_EXAMPLES), per project

    def learned(self, project: int | None) -> LearnedState:
        return self.learner.state(project)


def build_review(settings: Settings, credentials: CredentialStore, metrics: Metrics,
                 book: FewShotBook | None = None) -> ReviewLoop:
    """`book`: the pipeline's few-shot examples, which the learner fills from the ledger."""
    ledger = make_ledger(settings.redis_url, settings.redis_prefix)
    reader = LabelStudioApi(credentials, timeout=READ_TIMEOUT)  # reads the credentials /setup may change at every call
    learner = Learner(ledger, settings.review_learn, settings.review_min_samples, few_shot=settings.few_shot_examples,
                      source=ExampleSource(reader.get_json), book=book)
    return ReviewLoop(ReviewService(ledger, reader, metrics), learner)
