"""The I/O of `--estimate` (estimate.py is the arithmetic): count the input tokens of a sample of a
job's tasks with Gemini's countTokens (the SDK's `client.models.count_tokens`), and read the
version's output-token history from the jobs' usage records. No generateContent call is made.

Each sampled task is prepared as a job prepares it (images fetched and scaled, few-shot examples
attached, files uploaded or inlined through the Files API cache, which the job then reuses), and
each of its requests is built by the same code that sends it (gemini/wire.build_request), then
counted instead of sent. The Gemini Developer API's countTokens takes no system instruction, so
the system prompt is counted as a text turn of its own (the same tokens).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from google.genai import types

from ..gemini.kinds import KINDS
from ..gemini.wire import build_request
from ..images.prepare import PreparedImage
from ..labelconfig import ProjectSpec
from ..pipeline import Pipeline
from ..plan import PlannedRequest, plan_requests
from ..predict import TaskFailure
from .budget import Budget
from .estimate import CountedRequest, Estimate, OutputRates, estimate, rates_from_history, sample_indices
from .records import JobStore

log = logging.getLogger("gemini_ls.jobs")

HISTORY_JOBS = 50  # recent jobs looked at for the version's output tokens


def request_images(plan: PlannedRequest, images: Sequence[PreparedImage]) -> list[list[PreparedImage]]:
    """The image sets a plan is sent with for one task: one request today. TILING HOOK: when tiling
    (TILING=auto|RxC, tiling/) splits a request into tiles, return one entry per tiled request here,
    so the estimate counts every tile as it will be billed."""
    return [list(images)]


class _Counter:
    """Stands where gemini/request.GeminiCaller stands in FilesManager.generate: builds the request
    exactly, then counts it."""

    def __init__(self, client: Any, settings: Any) -> None:
        self.client = client
        self.settings = settings
        self.counted: list[CountedRequest] = []

    def generate(self, prompt: Any, parts: list[types.Part], kind: Any, *, deadline: float, model: str | None = None,
                 history: Sequence[types.Content] = (), cached_content: str | None = None) -> None:
        # count_task asks for histories without a cache (contents_for(cache=False)): `cached_content`
        # is always None here, and the examples are counted as turns
        target, contents, config = build_request(self.settings, prompt, parts, kind, model, history)
        if config.system_instruction:
            system = config.system_instruction
            text = system if isinstance(system, str) else " ".join(
                p.text or "" for p in (getattr(system, "parts", None) or []))
            contents = [types.Content(role="user", parts=[types.Part.from_text(text=text)]), *contents]
        left = max(1.0, min(self.settings.request_timeout, deadline - time.monotonic()))
        reply = self.client.models.count_tokens(
            model=target, contents=contents,
            config=types.CountTokensConfig(http_options=types.HttpOptions(timeout=int(left * 1000))))
        self.counted.append(CountedRequest(kind=str(getattr(kind, "value", kind)), model=target,
                                           input_tokens=int(reply.total_tokens or 0)))


def count_task(pipeline: Pipeline, task: Mapping[str, Any], spec: ProjectSpec, plans: Sequence[PlannedRequest],
               *, deadline: float) -> list[CountedRequest]:
    """The counted requests of one task; [] when its images cannot be had (it would fail, costing nothing)."""
    gateway = pipeline.gateway
    if gateway is None:
        raise RuntimeError("Gemini is not configured")
    predictor = pipeline.runner.predictor
    try:
        _refs, prepared = predictor.prepare_images(task, spec, plans, pipeline.fetch)
    except TaskFailure as exc:
        log.warning("estimate: task %s left out of the sample: %s", task.get("id"), exc.message)
        return []
    counter = _Counter(gateway.caller.client, pipeline.settings)
    for plan in plans:
        plan = plan.for_task(task.get("id"))
        for images in request_images(plan, [prepared[n] for n in plan.image_names]):
            prompt = KINDS[plan.kind].prompt(plan, len(images))
            # never a context cache made by an estimate; the examples a job would cache are billed at
            # the cached rate (gemini/ctxcache.py, gemini/pricing.py)
            history = gateway.fewshot.contents_for(plan, prompt, deadline=deadline, model=plan.model, cache=False) if (
                gateway.fewshot is not None and plan.examples) else None
            uses = {im.sha256: 2 for im in images}  # as a job: an image serves several requests, so files
            before = len(counter.counted)
            gateway.files.generate(counter, prompt, images, uses, plan.kind, deadline=deadline, model=plan.model,
                                   history=history)
            if history is not None and gateway.fewshot is not None and gateway.fewshot.would_cache(history):
                counter.counted[before:] = [replace(r, cached_tokens=min(r.input_tokens, history.tokens))
                                            for r in counter.counted[before:]]
    return counter.counted


def history_rates(store: JobStore, budget: Budget, model_version: str) -> OutputRates:
    usages = [budget.usage(job.id) for job in store.recent(HISTORY_JOBS) if job.model_version == model_version]
    return rates_from_history([u for u in usages if u])


def estimate_job(pipeline: Pipeline, spec: ProjectSpec, version: str, tasks: Sequence[Mapping[str, Any]],
                 rates: OutputRates, *, progress: Callable[[int, int], None] | None = None) -> Estimate:
    settings = pipeline.settings
    plans = plan_requests(spec, settings.routing)
    if pipeline.few_shot is not None:
        plans = pipeline.few_shot.attach(plans, spec, version)
    picked = [tasks[i] for i in sample_indices(len(tasks))]
    sample = []
    for n, task in enumerate(picked, start=1):
        sample.append(count_task(pipeline, task, spec, plans, deadline=time.monotonic() + settings.predict_timeout))
        if progress is not None:
            progress(n, len(picked))
    return estimate(sample, len(tasks), rates, settings.price_overrides, settings.batch_discount)
