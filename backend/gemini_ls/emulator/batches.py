"""The Batch API, as google-genai 3.6.1 calls it (`client.batches.*`, `client.files.download`).

    POST   /{ver}/models/{model}:batchGenerateContent   {"batch": {"displayName", "inputConfig":
                                                          {"requests": {"requests": [...]}} | {"fileName": "files/ID"}}}
    GET    /{ver}/batches/{id}          GET /{ver}/batches?pageSize=&pageToken=
    POST   /{ver}/batches/{id}:cancel   DELETE /{ver}/batches/{id}
    GET    /{ver}/files/{id}:download?alt=media   (also under /download/{ver}/...)

Every batch answers as a long-running Operation whose `metadata` is the batch (what the SDK's
`_BatchJob_from_mldev` reads): state BATCH_STATE_PENDING -> RUNNING -> SUCCEEDED, or FAILED /
CANCELLED / EXPIRED. The batch stays PENDING for `pending_seconds`, then a worker thread replays
each request against this emulator's own generateContent over loopback HTTP, marked with the
header `x-emulator-batch`: the answers come from exactly the code a synchronous call runs (vision,
prompt reading, faults), and are counted under the route `batch.generateContent`, not
`generateContent`. Faults aimed at that route (`routes: ["batch.generateContent"]`, e.g. `500`
at `rate` 0.05) become per-request errors inside the batch, as on the service.

Results: inlined requests get `output.inlinedResponses.inlinedResponses[]` (each `response` or
`error`, with the request's `metadata`); a JSONL file source gets `output.responsesFile`, a
generated file of `{"key", "response"|"error"}` lines, fetched with `files/{id}:download`.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import errors, families, wire
from .files import FileStore, rfc3339

BATCH_HEADER = "x-emulator-batch"  # marks our own loopback generateContent calls
BATCH_ROUTE = "batch.generateContent"
END_STATES = ("SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED")
_META_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch"

_VERSION = r"(v1|v1beta|v1alpha)"
_CREATE = re.compile(rf"^/{_VERSION}/models/([^/:]+):batchGenerateContent$")
_BATCHES = re.compile(rf"^/{_VERSION}/batches$")
_BATCH = re.compile(rf"^/{_VERSION}/batches/([a-z0-9][a-z0-9-]*)(:cancel)?$")
_DOWNLOAD = re.compile(rf"^(?:/download)?/{_VERSION}/files/([a-z0-9][a-z0-9-]*):download$")


@dataclass(frozen=True)
class BatchConfig:
    """How batches behave; change with `BatchStore.configure` or POST /_emulator/batches."""

    pending_seconds: float = 0.2  # PENDING this long before RUNNING
    running_seconds: float = 0.0  # at least this long RUNNING
    end_state: str | None = None  # force FAILED / EXPIRED at the end instead of SUCCEEDED
    end_state_model: str | None = None  # ... only for this model's batches (a job runs one batch per model)
    workers: int = 8  # loopback generateContent calls at once per batch


@dataclass
class Batch:
    id: str
    owner: str
    model: str
    version: str
    display_name: str
    requests: list[dict]  # [{"key": str | None, "metadata": dict | None, "request": dict}]
    from_file: bool
    created: float
    state: str = "PENDING"
    updated: float = 0.0
    ended: float | None = None
    output_file: str | None = None
    responses: list[dict] | None = None
    error: dict | None = None
    succeeded: int = 0
    failed: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)

    def resource(self, *, with_inline: bool = True) -> dict:
        stats: dict[str, str] = {"requestCount": str(len(self.requests))}
        if self.state in ("RUNNING", *END_STATES):
            done = self.succeeded + self.failed
            stats.update(successfulRequestCount=str(self.succeeded), failedRequestCount=str(self.failed),
                         pendingRequestCount=str(max(0, len(self.requests) - done)))
        meta: dict[str, Any] = {
            "@type": _META_TYPE,
            "name": f"batches/{self.id}",
            "model": f"models/{self.model}",
            "displayName": self.display_name,
            "createTime": rfc3339(self.created),
            "updateTime": rfc3339(self.updated or self.created),
            "state": f"BATCH_STATE_{self.state}",
            "batchStats": stats,
        }
        if self.ended is not None:
            meta["endTime"] = rfc3339(self.ended)
        if self.state == "SUCCEEDED":
            if self.output_file is not None:
                meta["output"] = {"responsesFile": f"files/{self.output_file}"}
            elif with_inline:  # like the service, list answers leave the inlined responses out
                meta["output"] = {"inlinedResponses": {"inlinedResponses": self.responses or []}}
        body: dict[str, Any] = {"name": f"batches/{self.id}", "metadata": meta}
        if self.state in END_STATES:
            body["done"] = True
            if self.error is not None:
                body["error"] = self.error
        return body


class BatchHost(Protocol):
    """What a BatchStore needs of its emulator (state.py's EmulatorState): typed here, not imported,
    because the emulator's state holds the BatchStore."""

    port: int
    files: FileStore

    def _count(self, *, route: str | None = None) -> None: ...

    def _check_key(self, key: str | None) -> str: ...

    def _random_id(self, n: int) -> str: ...


class BatchStore:
    """Batches of one emulator: creation, the state machine (one thread per batch), results."""

    def __init__(self, emu: BatchHost) -> None:
        self.emu = emu
        self.config = BatchConfig()
        self._lock = threading.Lock()
        self._batches: dict[str, Batch] = {}
        self._counts = self._zero()

    @staticmethod
    def _zero() -> dict[str, int]:
        return {"created": 0, "requests": 0, "succeeded_requests": 0, "failed_requests": 0,
                "cancelled": 0, "deleted": 0, "downloads": 0}

    # ----- python-side control ---------------------------------------------------------------
    def configure(self, **changes: Any) -> BatchConfig:
        end_state = changes.get("end_state")
        if end_state not in (None, "", "SUCCEEDED", "FAILED", "EXPIRED"):
            raise ValueError("end_state must be SUCCEEDED, FAILED or EXPIRED")
        known = {k: v for k, v in changes.items() if k in BatchConfig.__dataclass_fields__}
        if known.get("end_state") in ("", "SUCCEEDED"):
            known["end_state"] = None
        with self._lock:
            self.config = BatchConfig(**{**self.config.__dict__, **known})
            return self.config

    def reset(self, *, batches: bool = False) -> None:
        """Zero the counts; with `batches`, also stop and forget every batch and restore the config."""
        with self._lock:
            self._counts = self._zero()
            if batches:
                for batch in self._batches.values():
                    batch.cancel.set()
                self._batches.clear()
                self.config = BatchConfig()

    def snapshot(self) -> dict:
        with self._lock:
            states: dict[str, int] = {}
            for b in self._batches.values():
                states[b.state] = states.get(b.state, 0) + 1
            return {"batches": {**self._counts, "states": states}}

    def requests_of(self, name: str) -> list[dict]:
        """The GenerateContentRequests a batch holds, as received (tests compare inline and file sources)."""
        with self._lock:
            batch = self._batches[name.rsplit("/", 1)[-1]]
        return [item["request"] for item in batch.requests]

    def _bump(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    # ----- HTTP ------------------------------------------------------------------------------
    def handle(self, handler: Any, path: str, query: dict, raw: bytes) -> bool:
        """Serve the request if it is a batch or download route; False when it is not ours."""
        emu = self.emu
        command = handler.command
        if (m := _CREATE.match(path)) and command == "POST":
            emu._count(route="batchGenerateContent")
            key = emu._check_key(handler.headers.get("x-goog-api-key"))
            handler._faults("batchGenerateContent")
            families.check_model(m.group(2), m.group(1), "batchGenerateContent")
            handler._send_json(200, self.create(key, m.group(2), m.group(1), wire.json_body(raw)))
            return True
        if _BATCHES.match(path) and command == "GET":
            emu._count(route="batches.list")
            key = emu._check_key(handler.headers.get("x-goog-api-key"))
            handler._faults("batches.list")
            handler._send_json(200, self.list_batches(key, query))
            return True
        if m := _BATCH.match(path):
            route = {("GET", None): "batches.get", ("DELETE", None): "batches.delete",
                     ("POST", ":cancel"): "batches.cancel"}.get((command, m.group(3)))
            if route is None:
                return False
            emu._count(route=route)
            key = emu._check_key(handler.headers.get("x-goog-api-key"))
            handler._faults(route)
            batch = self._get(m.group(2), key)
            if route == "batches.get":
                handler._send_json(200, batch.resource())
            elif route == "batches.cancel":
                self._cancel(batch)
                handler._send_json(200, {})
            else:
                self._delete(batch)
                handler._send_json(200, {})
            return True
        if (m := _DOWNLOAD.match(path)) and command == "GET":
            emu._count(route="files.download")
            key = emu._check_key(handler.headers.get("x-goog-api-key"))
            handler._faults("files.download")
            stored = emu.files.get(m.group(2), key)
            if stored.source != "GENERATED":
                raise errors.invalid_argument("Only generated files can be downloaded.")
            self._bump("downloads")
            handler._send(200, stored.data, content_type=stored.mime_type)
            return True
        return False

    def control(self, handler: Any, body: dict) -> None:
        """POST /_emulator/batches {config fields} changes them; GET answers config and counts."""
        if handler.command == "POST":
            try:
                self.configure(**body)
            except (TypeError, ValueError) as exc:
                raise errors.invalid_argument(str(exc)) from None
        handler._send_json(200, {"config": self.config.__dict__, **self.snapshot()})

    # ----- operations ------------------------------------------------------------------------
    def create(self, key: str, model: str, version: str, body: dict) -> dict:
        batch_body = wire.get(body, "batch") or {}
        input_config = wire.get(batch_body, "inputConfig") or {}
        file_name = wire.get(input_config, "fileName")
        if file_name:
            requests = list(_read_jsonl(self.emu.files.get(wire.file_id_from_uri(file_name), key).data))
        else:
            inlined = wire.get(wire.get(input_config, "requests") or {}, "requests")
            if not isinstance(inlined, list):
                raise errors.invalid_argument("* BatchGenerateContentRequest.batch.input_config: input_config is required")
            requests = [_inlined(item, n) for n, item in enumerate(inlined)]
        if not requests:
            raise errors.invalid_argument("The batch has no requests.")
        now = time.time()
        batch = Batch(
            id=self._new_id(), owner=key, model=model, version=version,
            display_name=str(wire.get(batch_body, "displayName") or ""), requests=requests,
            from_file=bool(file_name), created=now,
        )
        with self._lock:
            self._batches[batch.id] = batch
            self._counts["created"] += 1
            self._counts["requests"] += len(requests)
        threading.Thread(target=self._run, args=(batch,), name=f"emulator-batch:{batch.id}", daemon=True).start()
        return batch.resource()

    def list_batches(self, key: str, query: dict) -> dict:
        with self._lock:
            mine = sorted((b for b in self._batches.values() if b.owner == key), key=lambda b: -b.created)
        size = max(1, min(int((query.get("pageSize") or ["50"])[0]), 1000))
        start = int((query.get("pageToken") or ["0"])[0] or 0)
        body: dict[str, Any] = {"operations": [b.resource(with_inline=False) for b in mine[start : start + size]]}
        if start + size < len(mine):
            body["nextPageToken"] = str(start + size)
        return body

    def _get(self, batch_id: str, key: str) -> Batch:
        with self._lock:
            batch = self._batches.get(batch_id)
        if batch is None or batch.owner != key:
            raise errors.not_found(f"Batch batches/{batch_id} not found.")
        return batch

    def _cancel(self, batch: Batch) -> None:
        with self._lock:
            if batch.state in END_STATES:
                return
            batch.cancel.set()
            self._counts["cancelled"] += 1
        self._end(batch, "CANCELLED")

    def _delete(self, batch: Batch) -> None:
        batch.cancel.set()
        with self._lock:
            self._batches.pop(batch.id, None)
            self._counts["deleted"] += 1

    def _new_id(self) -> str:
        return "".join(c for c in self.emu._random_id(40).lower() if c.isalnum())[:16]

    # ----- the state machine -----------------------------------------------------------------
    def _end(self, batch: Batch, state: str, error: dict | None = None) -> None:
        with self._lock:
            if batch.state in END_STATES:
                return
            batch.state, batch.error = state, error
            batch.ended = batch.updated = time.time()

    def _run(self, batch: Batch) -> None:
        while time.time() - batch.created < self.config.pending_seconds:  # read live: a test may shorten it
            if batch.cancel.wait(0.05):
                return
        config = self.config
        with self._lock:
            if batch.state != "PENDING":
                return
            batch.state, batch.updated = "RUNNING", time.time()
        started = time.monotonic()
        try:
            results = self._answers(batch, config.workers)
        except Exception as exc:  # an emulator bug ends the batch FAILED, like a service-side failure
            self._end(batch, "FAILED", {"code": 13, "message": f"internal error: {exc}"})
            return
        if results is None or batch.cancel.wait(max(0.0, config.running_seconds - (time.monotonic() - started))):
            return
        end_state = config.end_state if config.end_state_model in (None, batch.model) else None
        if end_state == "FAILED":
            return self._end(batch, "FAILED", {"code": 13, "message": "The batch failed (emulator end_state)."})
        if end_state == "EXPIRED":
            return self._end(batch, "EXPIRED")
        if batch.from_file:
            lines = b"".join(json.dumps(r).encode() + b"\n" for r in results)
            stored = self.emu.files.add_generated(batch.owner, f"batch-{batch.id}", "application/jsonl", lines)
            batch.output_file = stored.id
        else:
            batch.responses = results
        self._end(batch, "SUCCEEDED")

    def _answers(self, batch: Batch, workers: int) -> list[dict] | None:
        """One result per request, in request order; None when cancelled meanwhile."""
        local = threading.local()

        def answer(item: dict) -> dict:
            if batch.cancel.is_set():
                return {}
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection("127.0.0.1", self.emu.port, timeout=300)
            status, reply = _post(conn, f"/{batch.version}/models/{batch.model}:generateContent",
                                  item["request"], batch.owner, batch.id)
            ok = status == 200
            self._bump("succeeded_requests" if ok else "failed_requests")
            with self._lock:
                if ok:
                    batch.succeeded += 1
                else:
                    batch.failed += 1
                batch.updated = time.time()
            out: dict[str, Any] = {"response": reply} if ok else {"error": _status(status, reply)}
            if batch.from_file:
                out["key"] = item["key"]
            elif item["metadata"] is not None:
                out["metadata"] = item["metadata"]
            return out

        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix=f"batch-{batch.id}") as pool:
            results = list(pool.map(answer, batch.requests))
        return None if batch.cancel.is_set() else results


def _inlined(item: Any, n: int) -> dict:
    request = wire.get(item, "request")
    if not isinstance(request, dict):
        raise errors.invalid_argument(f"Invalid value at 'batch.input_config.requests.requests[{n}].request'.")
    metadata = wire.get(item, "metadata")
    return {"key": None, "metadata": metadata if isinstance(metadata, dict) else None, "request": request}


def _read_jsonl(data: bytes) -> Iterator[dict]:
    """The input file: one {"key": ..., "request": {GenerateContentRequest}} per line."""
    for n, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise errors.invalid_argument(f"Line {n} of the batch input file is not JSON.") from None
        request = wire.get(item, "request")
        if not isinstance(item, dict) or not isinstance(request, dict):
            raise errors.invalid_argument(f"Line {n} of the batch input file has no \"request\" object.")
        yield {"key": str(item.get("key", n)), "metadata": None, "request": request}


def _post(conn: http.client.HTTPConnection, path: str, body: dict, key: str, batch_id: str) -> tuple[int, dict]:
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "x-goog-api-key": key, BATCH_HEADER: batch_id}
    for attempt in (1, 2):  # a keep-alive connection the server closed (a `drop` fault) is reopened once
        try:
            conn.request("POST", path, body=data, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            try:
                return response.status, json.loads(payload or b"{}")
            except json.JSONDecodeError:
                return response.status, {"error": {"code": response.status, "message": payload[:200].decode(errors="replace")}}
        except (http.client.HTTPException, OSError) as exc:
            conn.close()
            if attempt == 2:
                return 503, {"error": {"code": 503, "message": f"connection lost: {exc}", "status": "UNAVAILABLE"}}
    raise AssertionError("unreachable")


def _status(status: int, reply: dict) -> dict:
    """A google.rpc.Status (what a batch reports per failed request) from an HTTP error answer."""
    err: dict = reply["error"] if isinstance(reply.get("error"), dict) else {}
    grpc = {400: 3, 403: 7, 404: 5, 429: 8, 500: 13, 503: 14, 504: 4}.get(status, 2)
    return {"code": grpc, "message": str(err.get("message") or f"HTTP {status}"), "details": err.get("details", [])}
