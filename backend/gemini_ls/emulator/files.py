"""The Files API store: resumable upload sessions, file records, states, expiry and ownership."""

from __future__ import annotations

import base64
import builtins
import hashlib
import random
import string
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import errors

PUBLIC_FILES_URL = "https://generativelanguage.googleapis.com/v1beta/files/"
ID_ALPHABET = string.ascii_lowercase + string.digits


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class StoredFile:
    id: str
    owner: str  # the API key that uploaded it
    display_name: str | None
    mime_type: str
    data: bytes
    created: float
    expires: float
    state: str = "ACTIVE"
    active_at: float | None = None  # PROCESSING until then (None: stuck until told otherwise)
    deleted: bool = False
    source: str = "UPLOADED"  # GENERATED: a batch's results file, the only kind that can be downloaded

    def current_state(self, now: float) -> str:
        if self.state == "PROCESSING" and self.active_at is not None and now >= self.active_at:
            self.state = "ACTIVE"
        return self.state

    def resource(self, now: float) -> dict:
        body: dict[str, object] = {
            "name": f"files/{self.id}",
            "mimeType": self.mime_type,
            "sizeBytes": str(len(self.data)),
            "createTime": rfc3339(self.created),
            "updateTime": rfc3339(self.created),
            "expirationTime": rfc3339(self.expires),
            "sha256Hash": base64.b64encode(hashlib.sha256(self.data).hexdigest().encode()).decode(),
            "uri": PUBLIC_FILES_URL + self.id,
            "state": self.current_state(now),
            "source": self.source,
        }
        if self.source == "GENERATED":
            body["downloadUri"] = f"{PUBLIC_FILES_URL}{self.id}:download?alt=media"
        if self.display_name:
            body["displayName"] = self.display_name
        if self.state == "FAILED":
            body["error"] = {"code": 400, "message": "File processing failed.", "details": []}
        return body


@dataclass
class UploadSession:
    owner: str
    display_name: str | None
    mime_type: str
    declared_size: int | None
    processing_seconds: float | None | bool  # False: ACTIVE at once; None: stuck PROCESSING
    buffer: bytearray = field(default_factory=bytearray)


class FileStore:
    def __init__(self, ttl_seconds: float, rng: random.Random):
        self.ttl_seconds = ttl_seconds
        self._rng = rng
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}
        self._sessions: dict[str, UploadSession] = {}

    def _new_id(self, length: int) -> str:
        while True:
            candidate = "".join(self._rng.choice(ID_ALPHABET) for _ in range(length))
            if candidate not in self._files and candidate not in self._sessions:
                return candidate

    def start_upload(self, owner: str, display_name: str | None, mime_type: str, size: int | None,
                     processing_seconds: float | None | bool = False) -> str:
        with self._lock:
            upload_id = self._new_id(24)
            self._sessions[upload_id] = UploadSession(owner, display_name, mime_type, size, processing_seconds)
            return upload_id

    def append_chunk(self, upload_id: str, offset: int, chunk: bytes, finalize: bool) -> StoredFile | None:
        """Add a chunk; returns the file when finalized. Raises ApiError on a bad session/offset."""
        with self._lock:
            session = self._sessions.get(upload_id)
            if session is None:
                raise errors.not_found("Upload session not found or already finalized.")
            if offset != len(session.buffer):
                raise errors.invalid_argument(
                    f"Invalid upload offset {offset}; expected {len(session.buffer)}."
                )
            session.buffer.extend(chunk)
            if not finalize:
                return None
            del self._sessions[upload_id]
            now = time.time()
            stuck = session.processing_seconds
            stored = StoredFile(
                id=self._new_id(12),
                owner=session.owner,
                display_name=session.display_name,
                mime_type=session.mime_type,
                data=bytes(session.buffer),
                created=now,
                expires=now + self.ttl_seconds,
            )
            if stuck is not False:
                stored.state = "PROCESSING"
                stored.active_at = None if stuck is None else now + float(stuck)
            self._files[stored.id] = stored
            return stored

    def add_generated(self, owner: str, display_name: str, mime_type: str, data: bytes) -> StoredFile:
        """A file the service wrote (a batch's results): ACTIVE, downloadable, same lifetime."""
        with self._lock:
            now = time.time()
            stored = StoredFile(self._new_id(12), owner, display_name, mime_type, data, now, now + self.ttl_seconds,
                                source="GENERATED")
            self._files[stored.id] = stored
            return stored

    def get(self, file_id: str, key: str) -> StoredFile:
        """The file if `key` may use it; 403 for unknown, deleted, expired or another key's files."""
        with self._lock:
            stored = self._files.get(file_id)
            if stored is None or stored.deleted or stored.owner != key or time.time() >= stored.expires:
                raise errors.file_denied(file_id)
            return stored

    def delete(self, file_id: str, key: str) -> None:
        stored = self.get(file_id, key)
        with self._lock:
            stored.deleted = True

    def list(self, key: str) -> builtins.list[StoredFile]:
        now = time.time()
        with self._lock:
            return sorted(
                (f for f in self._files.values() if f.owner == key and not f.deleted and now < f.expires),
                key=lambda f: -f.created,
            )

    def expire(self, ids: builtins.list[str] | None = None) -> int:
        now = time.time()
        with self._lock:
            targets = [self._files[i] for i in ids if i in self._files] if ids else list(self._files.values())
            for f in targets:
                f.expires = min(f.expires, now - 0.001)
            return len(targets)

    def set_state(self, file_id: str, state: str) -> None:
        with self._lock:
            stored = self._files.get(file_id)
            if stored is None:
                raise errors.not_found(f"File {file_id} not found.")
            stored.state = state
            stored.active_at = None

    def clear(self) -> None:
        with self._lock:
            self._files.clear()
            self._sessions.clear()

    def snapshot(self) -> dict:
        with self._lock:
            return {"files": len(self._files), "upload_sessions": len(self._sessions)}
