"""Gemini behind the provider boundary: a planned request and its images in, a ParsedAnswer out.

Everything Gemini-specific happens here or below: the prompt for the request's kind and the
parser of its answer (kinds.py), the model the planner routed the request to (plan.model, resolved
through models.py: deprecated names, thinking rules, mask format) and its generation config
(client.py), inline bytes or
Files API references (files.py), retries and the shared 429 cool-down (request.py, rategate.py). What leaves is
typed detections, or a ProviderError whose reason starts with "gemini_".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from ..detections import ParsedAnswer
from ..images.prepare import PreparedImage
from ..plan import PlannedRequest
from ..provider import CallHealth, ProviderError
from .ctxcache import is_cache_rejection
from .errors import GeminiError
from .fewshot import FewShotWire
from .files import FilesManager
from .kinds import KINDS, prompt_for
from .request import GeminiCaller
from .wire import Reply

log = logging.getLogger(__name__)


class GeminiGateway:
    """The VisionProvider for Gemini (and for our emulator, which speaks the same API)."""

    def __init__(self, caller: GeminiCaller, files: FilesManager, fewshot: FewShotWire | None = None) -> None:
        self.caller = caller
        self.files = files
        self.fewshot = fewshot  # worked examples before the request (FEW_SHOT_EXAMPLES), fewshot.py
        self.health = CallHealth()

    def __repr__(self) -> str:  # the client below holds the key; never print it
        return f"GeminiGateway({self.caller!r})"

    def answer(
        self, plan: PlannedRequest, images: Sequence[PreparedImage], *, uses: Mapping[str, int], deadline: float
    ) -> ParsedAnswer:
        prompt = prompt_for(plan, len(images))
        try:
            history = self.fewshot.contents_for(plan, prompt, deadline=deadline, model=plan.model) if (
                self.fewshot is not None and plan.examples) else None
            try:
                reply = self.files.generate(self.caller, prompt, list(images), uses, plan.kind, deadline=deadline,
                                            model=plan.model, history=history)
            except GeminiError as exc:
                if history is None or history.cache is None or self.fewshot is None or not is_cache_rejection(exc):
                    raise
                history = self.fewshot.evict(history)  # the cache expired or was deleted: once more, examples inline
                reply = self.files.generate(self.caller, prompt, list(images), uses, plan.kind, deadline=deadline,
                                            model=plan.model, history=history)
        except GeminiError as exc:
            self.health.failed(str(exc))
            raise ProviderError(f"gemini_{exc.reason}", str(exc)) from exc
        except Exception as exc:  # not Gemini's answer: a bug of ours, reported as internal upstream
            self.health.failed(f"{type(exc).__name__}: {exc}")
            raise
        self.health.ok()
        if history is not None and self.fewshot is not None:
            self.fewshot.record(history, reply.usage.prompt_tokens, reply.usage.cached_tokens)
        return self.parse(plan, reply, len(images))

    @staticmethod
    def parse(plan: PlannedRequest, reply: Reply, n_images: int) -> ParsedAnswer:
        """Gemini's reply to `plan` (sent with `n_images` images) -> ParsedAnswer, or ProviderError when it
        was blocked or empty. Shared by synchronous calls and Batch API results (gemini/batches.py)."""
        if reply.block_reason:
            raise ProviderError("gemini_blocked", f"Gemini blocked the prompt ({reply.block_reason})")
        if reply.text is None:
            raise ProviderError("gemini_empty", f"Gemini returned no answer (finish reason {reply.finish_reason or 'none'})")
        return KINDS[plan.kind].parse(reply.text, plan, reply.finish_reason, n_images)
