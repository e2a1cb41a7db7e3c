"""A local Gemini API emulator: a real HTTP server the google-genai SDK talks to unchanged.

    server = EmulatorServer(port=0).start()        # server.url -> "http://127.0.0.1:PORT"
    client = genai.Client(api_key=DEFAULT_API_KEY,
                          http_options=types.HttpOptions(base_url=server.url, api_version="v1beta"))

Routes: POST /{ver}/models/{model}:generateContent | :streamGenerateContent | :countTokens,
the resumable Files API (/upload/{ver}/files, /{ver}/files[/{id}]) and control endpoints under
/_emulator/ (no API key). See README.md beside this file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import signal
import socket
import string
import sys
import threading
import time
import traceback
from collections import OrderedDict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import DEFAULT_API_KEY, answers, errors, families, interactive, tokens, understanding, vision, wire
from . import faults as faults_mod
from . import mistakes as mistakes_mod
from .batches import BATCH_HEADER, BatchStore
from .errors import ApiError
from .faults import Fault, FaultError, FaultPlan
from .files import FileStore

FILE_TTL_SECONDS = 48 * 3600
CHUNK_GRANULARITY = 8 * 1024 * 1024
_VERSION = r"(v1|v1beta|v1alpha)"
_MODEL_ROUTE = re.compile(rf"^/{_VERSION}/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)$")
_FILES_ROUTE = re.compile(rf"^/{_VERSION}/files$")
_FILE_ROUTE = re.compile(rf"^/{_VERSION}/files/([a-z0-9][a-z0-9-]*)$")
_UPLOAD_ROUTE = re.compile(rf"^/upload/{_VERSION}/files$")
_KNOWN_MODEL = re.compile(r"^(gemini|gemma|learnlm)", re.IGNORECASE)
_VISION_CACHE_SIZE = 64
_SPATIAL = (understanding.TaskKind.DETECT, understanding.TaskKind.SEGMENT)


ARRIVALS_KEPT = 10000


class _DropConnection(Exception):
    """Raised to close the socket without writing any HTTP response."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # benchmarks open hundreds of connections at once

    emulator: EmulatorServer


class EmulatorServer:
    """The emulator. All state (files, faults, counters, keys) lives on this object."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: frozenset[str] | set[str] = frozenset({DEFAULT_API_KEY}),
        latency: float = 0.0,
        jitter: float = 0.0,
        file_ttl_seconds: float = FILE_TTL_SECONDS,
        seed: int = 0,
        verbose: bool = False,
    ):
        self.host = host
        self.port = port
        self.latency = latency
        self.jitter = jitter
        self.verbose = verbose
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._api_keys = set(api_keys)
        self.files = FileStore(file_ttl_seconds, random.Random(seed + 1))
        self.faults = FaultPlan(random.Random(seed + 2))
        self.batches = BatchStore(self)  # the Batch API (batches.py)
        self._counters = self._zero_counters()
        self.mistakes: mistakes_mod.Mistakes | None = None  # see mistakes.py
        self.recorded: deque[dict] = deque(maxlen=0)  # generateContent bodies, once `record` is called
        self._vision_cache: OrderedDict[str, vision.SeenImage] = OrderedDict()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----- lifecycle -------------------------------------------------------------------------
    def start(self) -> EmulatorServer:
        httpd = _HTTPServer((self.host, self.port), _Handler)
        httpd.emulator = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, name=f"gemini-emulator:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    # ----- python-side control (mirrors /_emulator/*) ----------------------------------------
    def add_api_key(self, key: str) -> None:
        with self._lock:
            self._api_keys.add(key)

    def api_keys(self) -> set[str]:
        with self._lock:
            return set(self._api_keys)

    def add_fault(self, fault: str, *, count: int | None = None, rate: float | None = None,
                  args: dict | None = None, routes: list[str] | None = None) -> None:
        """Inject `fault` into the next `count` (default 1) requests, or into a `rate` share of them.

        `routes` defaults to ["generateContent"] ("upload" for the processing fault); "*" means all.
        """
        self.faults.add(fault, count=count, rate=rate, args=args, routes=routes)

    def clear_faults(self) -> None:
        self.faults.clear()

    def set_latency(self, latency: float, jitter: float = 0.0) -> None:
        with self._lock:
            self.latency, self.jitter = latency, jitter

    def expire_files(self, ids: list[str] | None = None) -> int:
        """Make files (all, or those ids) expire now; returns how many."""
        return self.files.expire(ids)

    def set_file_state(self, file_id: str, state: str) -> None:
        if state not in ("PROCESSING", "ACTIVE", "FAILED"):
            raise ValueError("state must be PROCESSING, ACTIVE or FAILED")
        self.files.set_state(file_id, state)

    def reset(self, *, files: bool = False) -> None:
        """Clear faults, mistakes and counters (and stored files when `files`)."""
        self.faults.clear()
        self.mistakes = None
        with self._lock:
            self._counters = self._zero_counters()
            self.recorded = deque(maxlen=0)
        self.batches.reset(batches=files)
        if files:
            self.files.clear()

    def record(self, keep: int = 100) -> None:
        """From now on keep the last `keep` generateContent bodies (parsed JSON) in `recorded`, for
        tests that check what reached the wire (off by default and after `reset`: bodies can carry
        megabytes of inline images)."""
        with self._lock:
            self.recorded = deque(maxlen=keep)

    def counters(self) -> dict:
        with self._lock:
            snapshot = json.loads(json.dumps(self._counters))
        snapshot.update(self.files.snapshot())
        snapshot.update(self.batches.snapshot())
        return snapshot

    # ----- internals -------------------------------------------------------------------------
    @staticmethod
    def _zero_counters() -> dict:
        return {
            "requests": {},
            "statuses": {},
            "faults": {},
            "uploads": 0,
            "bytes_received": 0,
            "tokens": {"prompt": 0, "candidates": 0, "total": 0},
            "models": {},  # per model asked: requests and tokens (routing tests, token benchmarks)
            "arrivals": {},  # route -> epoch seconds of the last ARRIVALS_KEPT requests (rate-limit tests)
        }

    def _count_model(self, model: str, prompt: int, candidates: int, thoughts: int) -> None:
        with self._lock:
            entry = self._counters["models"].setdefault(model, {"requests": 0, "prompt": 0, "candidates": 0, "thoughts": 0})
            entry["requests"] += 1
            entry["prompt"] += prompt
            entry["candidates"] += candidates
            entry["thoughts"] += thoughts

    def _count(self, *, route: str | None = None, status: int | None = None, fault: str | None = None,
               nbytes: int = 0, upload: bool = False, prompt_tokens: int = 0, candidate_tokens: int = 0) -> None:
        with self._lock:
            c = self._counters
            if route:
                c["requests"][route] = c["requests"].get(route, 0) + 1
                times = c["arrivals"].setdefault(route, [])
                times.append(time.time())
                del times[:-ARRIVALS_KEPT]
            if status is not None:
                c["statuses"][str(status)] = c["statuses"].get(str(status), 0) + 1
            if fault:
                c["faults"][fault] = c["faults"].get(fault, 0) + 1
            c["bytes_received"] += nbytes
            c["uploads"] += int(upload)
            c["tokens"]["prompt"] += prompt_tokens
            c["tokens"]["candidates"] += candidate_tokens
            c["tokens"]["total"] += prompt_tokens + candidate_tokens

    def _random_id(self, n: int) -> str:
        alphabet = string.ascii_letters + string.digits + "-_"
        with self._lock:
            return "".join(self._rng.choice(alphabet) for _ in range(n))

    def _sleep(self, seconds: float, jitter: float) -> None:
        if seconds <= 0 and jitter <= 0:
            return
        with self._lock:
            delta = self._rng.uniform(-jitter, jitter) if jitter > 0 else 0.0
        time.sleep(max(0.0, seconds + delta))

    def _see(self, data: bytes) -> vision.SeenImage:
        key = hashlib.sha256(data).hexdigest()
        with self._lock:
            cached = self._vision_cache.get(key)
            if cached is not None:
                self._vision_cache.move_to_end(key)
                return cached
        try:
            seen = vision.see(vision.decode_raw(data))
        except vision.UndecodableImage:
            raise errors.invalid_argument(
                "Unable to process input image. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting"
            ) from None
        with self._lock:
            self._vision_cache[key] = seen
            while len(self._vision_cache) > _VISION_CACHE_SIZE:
                self._vision_cache.popitem(last=False)
        return seen

    def _check_key(self, key: str | None) -> str:
        if key is None or key.strip() == "":
            raise errors.missing_api_key()
        key = key.strip()
        with self._lock:
            known = key in self._api_keys
        if not known:
            raise errors.bad_api_key()
        return key


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server: _HTTPServer

    # ----- plumbing --------------------------------------------------------------------------
    @property
    def emu(self) -> EmulatorServer:
        return self.server.emulator

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        if self.emu.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        return body

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
              content_type: str = "application/json; charset=UTF-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        # Counted BEFORE the body goes out: once a client holds its answer, the counters include it.
        # Counting after the write let a test's last answer land in the NEXT test's counters when
        # this thread was descheduled between the two (the shared emulator is reset between tests).
        self.emu._count(status=status)
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, obj, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _json_body(self, raw: bytes):
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise errors.invalid_argument(
                "Invalid JSON payload received. Unexpected token."
            ) from None

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        raw = self._read_body()  # always drain the body so keep-alive stays in sync
        emu = self.emu
        emu._count(nbytes=len(raw))
        upload_headers: dict[str, str] | None = None
        try:
            if path.startswith("/_emulator/"):
                return self._control(path, raw)
            if (m := _UPLOAD_ROUTE.match(path)) and self.command == "POST":
                if "upload_id" in query:
                    # Every chunk response carries x-goog-upload-status, errors included,
                    # or the SDK silently re-sends the chunk three times.
                    upload_headers = {"x-goog-upload-status": "final"}
                    emu._count(route="upload_chunk")
                    return self._upload_chunk(query["upload_id"][0], raw)
                emu._count(route="upload")
                key = emu._check_key(self.headers.get("x-goog-api-key"))
                fired = self._faults("upload")
                return self._upload_start(m.group(1), raw, key, fired)
            if (m := _MODEL_ROUTE.match(path)) and self.command == "POST":
                version, model, method = m.groups()
                route = f"batch.{method}" if self.headers.get(BATCH_HEADER) else method  # a batch's own calls
                emu._count(route=route)
                key = emu._check_key(self.headers.get("x-goog-api-key"))
                fired = self._faults(route)
                if method == "countTokens":
                    return self._count_tokens(raw, key, model, version)
                return self._generate(raw, key, model, version, method, fired)
            if _FILES_ROUTE.match(path) and self.command == "GET":
                emu._count(route="files.list")
                key = emu._check_key(self.headers.get("x-goog-api-key"))
                self._faults("files.list")
                return self._list_files(key, query)
            if m := _FILE_ROUTE.match(path):
                route = "files.get" if self.command == "GET" else "files.delete" if self.command == "DELETE" else None
                if route:
                    emu._count(route=route)
                    key = emu._check_key(self.headers.get("x-goog-api-key"))
                    self._faults(route)
                    if route == "files.get":
                        return self._send_json(200, emu.files.get(m.group(2), key).resource(time.time()))
                    emu.files.delete(m.group(2), key)
                    return self._send_json(200, {})
            if emu.batches.handle(self, path, query, raw):
                return None
            emu._count(route="unknown")
            raise errors.not_found(f"Method not found: {self.command} {path}")
        except _DropConnection:
            self._drop()
        except ApiError as exc:
            self._send_json(exc.code, exc.body(), upload_headers)
        except FaultError as exc:
            self._send_json(400, errors.invalid_argument(str(exc)).body(), upload_headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # an emulator bug must still look like the service: 500 INTERNAL
            traceback.print_exc()
            self._send_json(500, errors.internal().body(), upload_headers)

    # ----- faults ----------------------------------------------------------------------------
    def _faults(self, route: str) -> list[Fault]:
        """Faults for this request: header ones plus server-wide rules; error faults fire here."""
        emu = self.emu
        fired = faults_mod.parse_header(self.headers.get("x-emulator-fault", "")) + emu.faults.draw(route)
        for fault in fired:
            emu._count(fault=fault.name)
        if route in ("generateContent", "streamGenerateContent"):
            emu._sleep(emu.latency, emu.jitter)
        for fault in fired:
            if fault.name == "latency":
                seconds, jitter = faults_mod.parse_latency(fault.arg("seconds", 1.0))
                emu._sleep(seconds, float(fault.arg("jitter", jitter)))
        names = {f.name: f for f in fired}
        if "drop" in names:
            raise _DropConnection()
        if "429" in names:
            raise errors.rate_limited(float(names["429"].arg("retry_delay", 7)))
        if "500" in names:
            raise errors.internal()
        if "503" in names:
            raise errors.unavailable()
        return fired

    # ----- models ----------------------------------------------------------------------------
    def _resolve_images(self, parsed: wire.ParsedRequest, key: str, *, history: bool = False) -> list[bytes]:
        out = []
        for part in parsed.history_images if history else parsed.images:
            if part.file_id is not None:
                stored = self.emu.files.get(part.file_id, key)
                state = stored.current_state(time.time())
                if state != "ACTIVE":
                    raise errors.file_not_active(part.file_id)
                wire.check_image_mime(part.mime_type or stored.mime_type)
                out.append(stored.data)
            else:
                wire.check_image_mime(part.mime_type)
                out.append(part.data or b"")
        return out

    def _check_model(self, model: str, version: str, method: str) -> None:
        if not _KNOWN_MODEL.match(model):
            raise errors.model_not_found(model, version, method)

    def _count_tokens(self, raw: bytes, key: str, model: str, version: str) -> None:
        self._check_model(model, version, "countTokens")
        body = self._json_body(raw)
        parsed = wire.parse_generate(body)
        text_tok = tokens.text_tokens(parsed.system_text + parsed.history_text + parsed.user_text)
        seen = [self.emu._see(data) for data in self._resolve_images(parsed, key, history=True) + self._resolve_images(parsed, key)]
        inner = wire.get(body, "generateContentRequest") if isinstance(wire.get(body, "generateContentRequest"), dict) else body
        image_tok = families.image_tokens(families.family_of(model), seen, inner, parsed.media_resolution)
        self._send_json(200, {"totalTokens": text_tok + image_tok, "promptTokensDetails": _details(text_tok, image_tok)})

    def _generate(self, raw: bytes, key: str, model: str, version: str, method: str, fired: list[Fault]) -> None:
        emu = self.emu
        self._check_model(model, version, method)
        body = self._json_body(raw)
        if emu.recorded.maxlen:
            with emu._lock:
                emu.recorded.append(body)
        parsed = wire.parse_generate(body)
        family = families.family_of(families.served_as(model))  # the model that really answers
        families.check_thinking(family, body)
        seen = [emu._see(data) for data in self._resolve_images(parsed, key)]
        history_seen = [emu._see(data) for data in self._resolve_images(parsed, key, history=True)]  # few-shot examples
        names = {f.name: f for f in fired}
        text_tok = tokens.text_tokens(parsed.system_text + parsed.history_text + parsed.user_text)
        image_tok = families.image_tokens(family, history_seen + seen, body, parsed.media_resolution)
        prompt_tok = text_tok + image_tok
        usage = {"promptTokenCount": prompt_tok, "promptTokensDetails": _details(text_tok, image_tok)}
        envelope = {"modelVersion": families.served_as(model), "responseId": emu._random_id(22)}

        if "safety_block" in names:
            usage["totalTokenCount"] = prompt_tok
            emu._count(prompt_tokens=prompt_tok)
            return self._reply(method, {
                "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": _SAFETY_RATINGS_BLOCKED},
                "usageMetadata": usage, **envelope})
        if "empty_candidates" in names:
            usage["totalTokenCount"] = prompt_tok
            emu._count(prompt_tokens=prompt_tok)
            return self._reply(method, {"candidates": [], "usageMetadata": usage, **envelope})

        task = understanding.read_task(parsed.system_text, parsed.user_text)
        request_key = hashlib.sha256(raw).hexdigest()
        mask = families.mask_encoder(family)
        items = interactive.items_for(task, parsed.user_text, seen, mask) if task.kind in _SPATIAL else None
        items = items if items is not None else answers.build_items(task, seen, mask)
        if items is None:
            text = answers.plain_text(task, seen)
            n_masks = 0
        else:
            _corrupt(items, names)
            made = mistakes_mod.for_request(self.headers.get(mistakes_mod.HEADER), emu.mistakes)
            items = mistakes_mod.apply(items, task, seen, made, request_key, shown=mistakes_mod.shown_labels(parsed.example_answers))
            text = answers.render(items, json_mode=parsed.json_mode, key=request_key, force_prose="prose" in names)
            n_masks = sum(1 for i in items if isinstance(i, dict) and isinstance(i.get("mask"), str))  # PNG maps; polygons are text
        cand_tok = tokens.text_tokens(re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)) + answers.MASK_TOKENS * n_masks
        finish = "STOP"
        if "truncate" in names:
            fraction = float(names["truncate"].arg("fraction", 0.6))
            text = text[: max(1, int(len(text) * fraction))]
            cand_tok = max(1, int(cand_tok * fraction))
            finish = "MAX_TOKENS"
        elif parsed.max_output_tokens and cand_tok > parsed.max_output_tokens:
            text = text[: max(1, int(len(text) * parsed.max_output_tokens / cand_tok))]
            cand_tok = parsed.max_output_tokens
            finish = "MAX_TOKENS"
        thought_tok = families.thought_tokens(family, body)
        usage.update({"candidatesTokenCount": cand_tok, "totalTokenCount": prompt_tok + cand_tok + thought_tok})
        if thought_tok:
            usage["thoughtsTokenCount"] = thought_tok
        emu._count_model(model, prompt_tok, cand_tok, thought_tok)
        emu._count(prompt_tokens=prompt_tok, candidate_tokens=cand_tok)
        body = {
            "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": finish, "index": 0}],
            "usageMetadata": usage,
            **envelope,
        }
        self._reply(method, body)

    def _reply(self, method: str, body: dict) -> None:
        if method == "streamGenerateContent":
            data = f"data: {json.dumps(body)}\r\n\r\n".encode()
            return self._send(200, data, content_type="text/event-stream")
        self._send_json(200, body)

    # ----- files -----------------------------------------------------------------------------
    def _upload_start(self, version: str, raw: bytes, key: str, fired: list[Fault]) -> None:
        body = self._json_body(raw)
        meta = wire.get(body, "file") or {}
        mime = wire.get(meta, "mimeType") or self.headers.get("X-Goog-Upload-Header-Content-Type")
        if not mime:
            raise errors.invalid_argument("Upload has no MIME type.")
        if (self.headers.get("X-Goog-Upload-Command") or "").strip().lower() != "start":
            raise errors.invalid_argument("Expected X-Goog-Upload-Command: start.")
        size = wire.get(meta, "sizeBytes") or self.headers.get("X-Goog-Upload-Header-Content-Length")
        processing: float | None | bool = False
        for fault in fired:
            if fault.name == "processing":
                seconds = fault.arg("seconds", None)
                processing = None if seconds in (None, "") else float(seconds)
        upload_id = self.emu.files.start_upload(
            key, wire.get(meta, "displayName"), mime, int(size) if size else None, processing
        )
        host = self.headers.get("Host") or f"{self.emu.host}:{self.emu.port}"
        url = f"http://{host}/upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable"
        self._send(200, b"", {
            "x-goog-upload-url": url,
            "x-goog-upload-status": "active",
            "x-goog-upload-chunk-granularity": str(CHUNK_GRANULARITY),
            "x-goog-upload-control-url": url,
        }, content_type="text/plain; charset=utf-8")

    def _upload_chunk(self, upload_id: str, raw: bytes) -> None:
        command = {c.strip().lower() for c in (self.headers.get("X-Goog-Upload-Command") or "").split(",")}
        if "upload" not in command:
            raise errors.invalid_argument("Unsupported X-Goog-Upload-Command.")
        try:
            offset = int(self.headers.get("X-Goog-Upload-Offset") or 0)
        except ValueError:
            raise errors.invalid_argument("Invalid X-Goog-Upload-Offset.") from None
        stored = self.emu.files.append_chunk(upload_id, offset, raw, "finalize" in command)
        if stored is None:
            return self._send(200, b"", {"x-goog-upload-status": "active",
                                         "x-goog-upload-size-received": str(offset + len(raw))},
                              content_type="text/plain; charset=utf-8")
        self.emu._count(upload=True)
        self._send_json(200, {"file": stored.resource(time.time())}, {"x-goog-upload-status": "final"})

    def _list_files(self, key: str, query: dict) -> None:
        files = self.emu.files.list(key)
        size = int((query.get("pageSize") or query.get("page_size") or ["10"])[0])
        size = max(1, min(size, 100))
        start = int((query.get("pageToken") or query.get("page_token") or ["0"])[0] or 0)
        page = files[start : start + size]
        body: dict = {"files": [f.resource(time.time()) for f in page]}
        if start + size < len(files):
            body["nextPageToken"] = str(start + size)
        self._send_json(200, body)

    # ----- control ---------------------------------------------------------------------------
    def _control(self, path: str, raw: bytes) -> None:
        emu = self.emu
        body = self._json_body(raw) if self.command == "POST" else {}
        if path == "/_emulator/health":
            return self._send_json(200, {"ok": True, "url": emu.url})
        if path == "/_emulator/counters" and self.command == "GET":
            return self._send_json(200, emu.counters())
        if path == "/_emulator/reset" and self.command == "POST":
            emu.reset(files=bool(body.get("files", False)))
            return self._send_json(200, {"ok": True})
        if path == "/_emulator/faults":
            if self.command == "GET":
                return self._send_json(200, {"faults": emu.faults.rules()})
            if self.command == "DELETE":
                emu.clear_faults()
                return self._send_json(200, {"ok": True})
            specs: list = body["faults"] if isinstance(body.get("faults"), list) else [body]
            for spec in specs:
                emu.add_fault(spec.get("fault", ""), count=spec.get("count"), rate=spec.get("rate"),
                              args=spec.get("args"), routes=spec.get("routes"))
            return self._send_json(200, {"faults": emu.faults.rules()})
        if path == "/_emulator/mistakes":
            return self._send_json(200, {"mistakes": mistakes_mod.control(emu, self.command, body)})
        if path == "/_emulator/batches":
            return emu.batches.control(self, body)
        if path == "/_emulator/latency" and self.command == "POST":
            seconds, jitter = faults_mod.parse_latency(body.get("latency", 0))
            emu.set_latency(seconds, float(body.get("jitter", jitter)))
            return self._send_json(200, {"latency": emu.latency, "jitter": emu.jitter})
        if path == "/_emulator/api_keys" and self.command == "POST":
            keys = body.get("keys") or [body.get("key")]
            for k in keys:
                if not isinstance(k, str) or not k.strip():
                    raise errors.invalid_argument("key must be a non-empty string")
                emu.add_api_key(k.strip())
            return self._send_json(200, {"ok": True})
        if path == "/_emulator/files/expire" and self.command == "POST":
            return self._send_json(200, {"expired": emu.expire_files(body.get("ids"))})
        if (m := re.match(r"^/_emulator/files/([a-z0-9-]+)/state$", path)) and self.command == "POST":
            try:
                emu.set_file_state(m.group(1), str(body.get("state")))
            except ValueError as exc:
                raise errors.invalid_argument(str(exc)) from None
            return self._send_json(200, {"ok": True})
        raise errors.not_found(f"Unknown control endpoint {self.command} {path}")


_SAFETY_RATINGS_BLOCKED = [
    {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
]


def _details(text_tok: int, image_tok: int) -> list[dict]:
    out = [{"modality": "TEXT", "tokenCount": text_tok}]
    if image_tok:
        out.append({"modality": "IMAGE", "tokenCount": image_tok})
    return out


def _corrupt(items: list, faults: dict[str, Fault]) -> None:
    """Apply the output-shape faults Gemini is known for to the answer items, in place."""
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        if "box_2d" in item:
            y0, x0, y1, x1 = item["box_2d"]
            if "coords_inverted" in faults:
                item["box_2d"] = [y1, x1, y0, x0]
            if "coords_out_of_range" in faults:
                # What the model sometimes does: run past the frame on both sides.
                y0, x0, y1, x1 = item["box_2d"]
                item["box_2d"] = [-7, x0, y1, 1013] if y0 <= y1 else [y0, 1013, -7, x1]
        if "point" in item and "coords_out_of_range" in faults:
            item["point"] = [item["point"][0] + 1100, item["point"][1] - 1100]
        if "mask" in item:
            if "mask_tokens" in faults:
                seg = "".join(f"<seg_{(i * 7 + k * 13) % 128}>" for k in range(16))
                item["mask"] = f"<start_of_mask>{seg}"
            elif "mask_bool_list" in faults:
                item["mask"] = [True] * 16 + [False] * 8


# ----- CLI ------------------------------------------------------------------------------------
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gemini-ls emulator", description="Local Gemini API emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", default="0", help="SECONDS[+-JITTER] added to every generateContent")
    parser.add_argument("--api-key", action="append", default=[], help="extra accepted API key (repeatable)")
    parser.add_argument("--file-ttl", type=float, default=FILE_TTL_SECONDS, help="file lifetime in seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mistakes", default="", help="e.g. false_positive=0.3;jitter=0.2;swap=0.05 (see mistakes.py)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        latency, jitter = faults_mod.parse_latency(args.latency)
    except ValueError:
        print(f"bad --latency {args.latency!r}: want SECONDS or SECONDS+-JITTER", file=sys.stderr)
        return 2
    server = EmulatorServer(
        args.host, args.port, api_keys=frozenset({DEFAULT_API_KEY, *args.api_key}), latency=latency,
        jitter=jitter, file_ttl_seconds=args.file_ttl, seed=args.seed, verbose=args.verbose,
    )
    server.mistakes = mistakes_mod.Mistakes.parse(args.mistakes) if args.mistakes else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"gemini-ls emulator listening on {server.url} (api key {DEFAULT_API_KEY!r})", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
