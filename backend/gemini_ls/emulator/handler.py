"""The emulator's HTTP side: routing, API keys, faults, the Files API and /_emulator/* control.

generateContent and countTokens answers come from generation.py, batches from batches.py; all
state lives on the EmulatorState the server hands to every request.
"""

from __future__ import annotations

import json
import re
import socket
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import errors, generation, wire
from . import faults as faults_mod
from . import mistakes as mistakes_mod
from .batches import BATCH_HEADER
from .errors import ApiError
from .faults import Fault, FaultError
from .state import EmulatorState

CHUNK_GRANULARITY = 8 * 1024 * 1024
_VERSION = r"(v1|v1beta|v1alpha)"
_MODEL_ROUTE = re.compile(rf"^/{_VERSION}/models/([^/:]+):(generateContent|streamGenerateContent|countTokens)$")
_FILES_ROUTE = re.compile(rf"^/{_VERSION}/files$")
_FILE_ROUTE = re.compile(rf"^/{_VERSION}/files/([a-z0-9][a-z0-9-]*)$")
_UPLOAD_ROUTE = re.compile(rf"^/upload/{_VERSION}/files$")


class _DropConnection(Exception):
    """Raised to close the socket without writing any HTTP response."""


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # benchmarks open hundreds of connections at once

    emulator: EmulatorState



class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server: EmulatorHTTPServer

    # ----- plumbing --------------------------------------------------------------------------
    @property
    def emu(self) -> EmulatorState:
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

    def do_PATCH(self) -> None:  # cachedContents.update (caches.py)
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
                    return self._send_json(200, generation.count_tokens(emu, raw, key, model, version))
                return self._reply(method, generation.generate(emu, raw, key, model, version, method, fired,
                                                               self.headers.get(mistakes_mod.HEADER)))
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
            if emu.caches.handle(self, path, query, raw, generation.count_tokens):
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

    def _reply(self, method: str, body: dict) -> None:
        if method == "streamGenerateContent":
            data = f"data: {json.dumps(body)}\r\n\r\n".encode()
            return self._send(200, data, content_type="text/event-stream")
        self._send_json(200, body)

    # ----- files -----------------------------------------------------------------------------
    def _upload_start(self, version: str, raw: bytes, key: str, fired: list[Fault]) -> None:
        body = wire.json_body(raw)
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
        body = wire.json_body(raw) if self.command == "POST" else {}
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
        if path == "/_emulator/caches/expire" and self.command == "POST":
            return self._send_json(200, {"expired": emu.caches.expire()})
        if path == "/_emulator/files/expire" and self.command == "POST":
            return self._send_json(200, {"expired": emu.expire_files(body.get("ids"))})
        if (m := re.match(r"^/_emulator/files/([a-z0-9-]+)/state$", path)) and self.command == "POST":
            try:
                emu.set_file_state(m.group(1), str(body.get("state")))
            except ValueError as exc:
                raise errors.invalid_argument(str(exc)) from None
            return self._send_json(200, {"ok": True})
        raise errors.not_found(f"Unknown control endpoint {self.command} {path}")
