"""The Gemini Batch API edge: the same generateContent requests as the synchronous path, sent as
one asynchronous batch at half the price, and its results read back as `Reply`s.

* Requests: `wire.build_request` (the synchronous path's contents + GenerateContentConfig) turned
  into the wire JSON by the SDK's own inlined-request serialiser (sdk_serialiser.py), so an inlined request, a JSONL
  line and a synchronous call carry the same body. Images always go as Files API references
  (through the shared URI cache, files.py): base64 images would make a batch input huge.
* `BatchWriter` streams `{"key": ..., "request": ...}` lines to a temporary JSONL file and keeps
  the SDK objects for inlining only while the total stays under the inline limit, so memory is
  bounded by that limit, never by the number of requests.
* `submit`: inlined `client.batches.create(src=[InlinedRequest...])` under the limit, else the file
  is uploaded (`client.files.upload`, resumable, in 8 MiB chunks) and `src="files/..."`.
* `wait`: `batches.get` with backoff (initial, x1.5, capped) until an end state.
* `results`: `dest.inlined_responses` (key from each request's metadata) or `dest.file_name`
  downloaded with `client.files.download` straight to a temporary file and read line by line.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from google import genai
from google.genai import types

from ..detections import RequestKind
from ..settings import Settings
from .prompts import Prompt
from .sdk_serialiser import request_json
from .wire import Reply, build_request, reply_from

log = logging.getLogger(__name__)

END_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"})
JSONL_MIME = "application/jsonl"


def state_word(job: types.BatchJob) -> str:
    """"JOB_STATE_RUNNING" / "BATCH_STATE_RUNNING" -> "RUNNING"."""
    raw = getattr(job.state, "value", job.state) or "UNSPECIFIED"
    return str(raw).rsplit("_STATE_", 1)[-1]


def inlined_request(
    settings: Settings, prompt: Prompt, parts: list[types.Part], kind: RequestKind, key: str, model: str | None = None,
    history: Sequence[types.Content] = (),
) -> types.InlinedRequest:
    target, contents, config = build_request(settings, prompt, parts, kind, model, history)
    return types.InlinedRequest(model=target, contents=contents, config=config, metadata={"key": key})


@dataclass(frozen=True)
class Result:
    """One request's outcome inside a batch: a reply, or the error the batch reported for it."""

    key: str
    reply: Reply | None
    error: str | None


class BatchWriter:
    """Collects a batch's requests: JSONL on disk always, SDK objects only while inlining is possible."""

    def __init__(self, client: genai.Client, *, inline_limit: int, mode: str = "auto") -> None:
        if mode not in ("auto", "inline", "file"):
            raise ValueError("batch mode must be auto, inline or file")
        self.client = client
        self.inline_limit = inline_limit
        self.mode = mode
        fd, self.path = tempfile.mkstemp(prefix="gemini-ls-batch-", suffix=".jsonl")
        self._file = os.fdopen(fd, "wb")
        self._inline: list[types.InlinedRequest] | None = [] if mode != "file" else None
        self.bytes = 0
        self.count = 0

    def add(self, key: str, request: types.InlinedRequest) -> None:
        line = json.dumps({"key": key, "request": request_json(self.client, request)}, separators=(",", ":")).encode() + b"\n"
        self._file.write(line)
        self.bytes += len(line)
        self.count += 1
        if self._inline is not None:
            if self.mode == "auto" and self.bytes > self.inline_limit:
                self._inline = None  # too big to inline: from now on only the file holds them
            else:
                self._inline.append(request)

    @property
    def source(self) -> str:
        return "inline" if self._inline is not None else "file"

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def discard(self) -> None:
        self.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def submit(self, model: str, display_name: str) -> types.BatchJob:
        """Create the batch (inlined or from the uploaded file)."""
        self.close()
        if self._inline is not None:
            return self.client.batches.create(model=model, src=self._inline, config={"display_name": display_name})
        uploaded = self.client.files.upload(
            file=self.path, config=types.UploadFileConfig(mime_type=JSONL_MIME, display_name=display_name)
        )
        if not uploaded.name:
            raise RuntimeError("the Files API answered the batch input upload without a file name")
        return self.client.batches.create(model=model, src=uploaded.name, config={"display_name": display_name})


def find_by_display_name(client: genai.Client, display_name: str) -> types.BatchJob | None:
    """The batch created under `display_name` (a process killed right after batches.create)."""
    for job in client.batches.list(config={"page_size": 100}):
        if job.display_name == display_name:
            return job
    return None


def wait(
    client: genai.Client,
    name: str,
    *,
    initial: float,
    maximum: float,
    on_poll: Callable[[types.BatchJob], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> types.BatchJob:
    """Poll batches.get until the batch ends; a failed poll (network, 5xx) is retried with the same backoff."""
    delay = initial
    while True:
        try:
            job = client.batches.get(name=name)
        except Exception as exc:
            log.warning("batches.get %s failed (%s); polling again in %.1f s", name, type(exc).__name__, delay)
        else:
            if on_poll is not None:
                on_poll(job)
            if state_word(job) in END_STATES:
                return job
        sleep(delay)
        delay = min(maximum, delay * 1.5)


def _error_text(error: Any) -> str:
    if error is None:
        return "unknown error"
    code = getattr(error, "code", None) if not isinstance(error, dict) else error.get("code")
    message = getattr(error, "message", None) if not isinstance(error, dict) else error.get("message")
    return f"code {code}: {message}" if code is not None else str(message or error)


def results(client: genai.Client, job: types.BatchJob) -> Iterator[Result]:
    """Every request's result, in the batch's order; a results file is streamed from disk."""
    dest = job.dest
    if dest is None:
        return
    if dest.inlined_responses is not None:
        for n, item in enumerate(dest.inlined_responses):
            key = str((item.metadata or {}).get("key", n))
            if item.error is not None or item.response is None:
                yield Result(key, None, _error_text(item.error))
            else:
                yield Result(key, reply_from(item.response), None)
        return
    if not dest.file_name:
        return
    fd, path = tempfile.mkstemp(prefix="gemini-ls-batch-results-", suffix=".jsonl")
    os.close(fd)
    try:
        client.files.download(file=dest.file_name, destination=path)
        with open(path, "rb") as lines:
            for n, line in enumerate(lines):
                if not line.strip():
                    continue
                item = json.loads(line)
                key = str(item.get("key", n))
                if item.get("error") is not None or not isinstance(item.get("response"), dict):
                    yield Result(key, None, _error_text(item.get("error")))
                else:
                    yield Result(key, reply_from(types.GenerateContentResponse.model_validate(item["response"])), None)
    finally:
        os.unlink(path)
