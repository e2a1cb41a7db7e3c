"""What a pre-labelling job will cost before it runs (`gemini-ls prelabel --estimate`): pure.

The I/O (estimate_io.py) counts the input tokens of every request of a sample of at most
SAMPLE_SIZE tasks with Gemini's countTokens, exactly as they would be sent (images at their media
resolution, few-shot examples, the system prompt; tiled requests once tiling makes them); this
module scales the sample to the job's task count and prices it. Output tokens cannot be counted
before the answer exists: they come from the model_version's history (the output tokens per
request its earlier jobs were billed, jobs/budget.py's usage) when there is one, else from the
per-kind prior below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..gemini.pricing import BATCH_DISCOUNT, Tokens, cost_by_model

SAMPLE_SIZE = 20

# Output (answer + thinking) tokens per request by kind, when the version has no history yet. A
# box or mask answer lists up to max_objects entries of ~25 tokens (a mask adds its PNG as base64:
# far more); a choice is a word or two, a caption a sentence. Thinking models add their thoughts on
# top: these priors are deliberately round and on the high side of what the emulator and
# gemini-2.5-flash answered in tests/benchmarks/bench_estimate.py; after one job the version's own
# figures replace them.
PRIOR_OUTPUT_PER_REQUEST: Mapping[str, int] = {"boxes": 300, "masks": 2500, "points": 200, "choice": 40, "text": 150}
PRIOR_DEFAULT = 300


@dataclass(frozen=True)
class CountedRequest:
    """One request of a sampled task, as countTokens counted it."""

    kind: str
    model: str
    input_tokens: int
    cached_tokens: int = 0  # of input_tokens: few-shot examples a job sends through a context cache


@dataclass(frozen=True)
class OutputRates:
    """Output tokens per request: one figure from the version's history, or the per-kind prior."""

    per_request: float | None = None  # from history (None: use the prior)
    history_requests: int = 0
    prior: Mapping[str, int] = field(default_factory=lambda: dict(PRIOR_OUTPUT_PER_REQUEST))

    @property
    def source(self) -> str:
        return f"history ({self.history_requests} requests)" if self.per_request is not None else "prior"

    def for_kind(self, kind: str) -> float:
        return self.per_request if self.per_request is not None else float(self.prior.get(kind, PRIOR_DEFAULT))


@dataclass(frozen=True)
class Estimate:
    tasks: int
    sampled: int  # tasks whose requests were counted
    requests: int
    input_tokens: int
    output_tokens: int
    by_model: Mapping[str, Tokens]
    sync_usd: float | None  # None: no price known for a model
    batch_usd: float | None
    output_source: str

    @property
    def per_task_sync_usd(self) -> float | None:
        return None if self.sync_usd is None or self.tasks <= 0 else self.sync_usd / self.tasks

    def to_json(self) -> dict:
        return {"tasks": self.tasks, "sampled": self.sampled, "requests": self.requests,
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "sync_usd": self.sync_usd, "batch_usd": self.batch_usd, "output_source": self.output_source,
                "models": sorted(self.by_model)}

    def describe(self) -> str:
        money = ("no price known for " + ", ".join(sorted(self.by_model)) + " (set GEMINI_PRICES)"
                 if self.sync_usd is None or self.batch_usd is None
                 else f"${self.sync_usd:.4f} synchronously, ${self.batch_usd:.4f} with --batch")
        return (f"estimate for {self.tasks} tasks (countTokens on {self.sampled} sampled): {self.requests} requests, "
                f"{self.input_tokens} input + {self.output_tokens} output tokens (output: {self.output_source}); {money}")


def sample_indices(n: int, k: int = SAMPLE_SIZE) -> list[int]:
    """At most k indices spread evenly over 0..n-1, first and last included: deterministic, so two
    estimates of one project count the same tasks."""
    if n <= k:
        return list(range(n))
    if k == 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def estimate(sample: Sequence[Sequence[CountedRequest]], tasks: int, output: OutputRates,
             prices: Mapping[str, tuple[float, float]] | None = None, discount: float = BATCH_DISCOUNT) -> Estimate:
    """The job's tokens and dollars: the sample's per-task average times `tasks`, per model."""
    counted = [s for s in sample if s]
    if not counted or tasks <= 0:
        return Estimate(tasks, len(counted), 0, 0, 0, {}, 0.0, 0.0, output.source)
    scale = tasks / len(counted)
    sums: dict[str, list[float]] = {}
    for requests in counted:
        for r in requests:
            acc = sums.setdefault(r.model, [0.0, 0.0, 0.0, 0.0])
            acc[0] += r.input_tokens
            acc[1] += output.for_kind(r.kind)
            acc[2] += 1
            acc[3] += r.cached_tokens
    by_model = {m: Tokens(prompt=round(a[0] * scale), output=round(a[1] * scale), requests=round(a[2] * scale),
                          cached=round(a[3] * scale)) for m, a in sums.items()}
    cost = cost_by_model(by_model, prices, discount)
    return Estimate(tasks=tasks, sampled=len(counted), requests=sum(t.requests for t in by_model.values()),
                    input_tokens=sum(t.prompt for t in by_model.values()),
                    output_tokens=sum(t.output for t in by_model.values()), by_model=by_model,
                    sync_usd=cost.sync_usd, batch_usd=cost.batch_usd, output_source=output.source)


def rates_from_history(usages: Sequence[Mapping[str, Tokens]], prior: Mapping[str, int] | None = None) -> OutputRates:
    """Output tokens per request over earlier jobs of the version (each a usage by model)."""
    total = sum((t for usage in usages for t in usage.values()), Tokens())
    base = dict(prior) if prior is not None else dict(PRIOR_OUTPUT_PER_REQUEST)
    if total.requests <= 0:
        return OutputRates(prior=base)
    return OutputRates((total.output + total.thoughts) / total.requests, total.requests, base)
