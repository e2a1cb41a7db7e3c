"""The cachedContents API (explicit context caching), as google-genai's `client.caches.*` calls it:

    POST   /{ver}/cachedContents              {"model": "models/M", "contents": [...], "systemInstruction": {...},
                                               "ttl": "600s" | "expireTime": RFC 3339, "displayName"}
    GET    /{ver}/cachedContents?pageSize=&pageToken=      GET    /{ver}/cachedContents/{id}
    PATCH  /{ver}/cachedContents/{id}         {"ttl": "900s"} | {"expireTime": ...}
    DELETE /{ver}/cachedContents/{id}

A resource answers as Gemini's does: name, model, displayName, createTime, updateTime, expireTime,
usageMetadata.totalTokenCount (the contents are not sent back). As on the service:

- a cache below the model's minimum (MIN_TOKENS: 2,048 for 2.5, 4,096 for 3.x, the caching page's
  table) is a 400 "Cached content is too small";
- it belongs to the API key that made it (another key: 403, as for files);
- past its expiry it is gone: GET answers 404, a generateContent naming it 403;
- a generateContent naming a cache may not set systemInstruction (400), and must ask the cache's
  model (400); its prompt is the cache's contents followed by its own, and usageMetadata reports
  `cachedContentTokenCount` (included in promptTokenCount, as Gemini counts).

`expire()` (POST /_emulator/caches/expire) makes caches expire now, for tests of expiry.
"""

from __future__ import annotations

import json
import random
import re
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import errors, families, wire
from .files import rfc3339

_VERSION = r"(v1|v1beta|v1alpha)"
_LIST = re.compile(rf"^/{_VERSION}/cachedContents$")
_ONE = re.compile(rf"^/{_VERSION}/cachedContents/([a-z0-9][a-z0-9-]*)$")
_NAME = re.compile(r"cachedContents/([a-z0-9][a-z0-9-]*)")
MIN_TOKENS = (("gemini-2.5", 2048), ("gemini-3", 4096))
DEFAULT_TTL = 3600.0  # the service's default when neither ttl nor expireTime is given


def min_tokens(model: str) -> int:
    name = model.rsplit("/", 1)[-1].lower()
    return next((n for prefix, n in MIN_TOKENS if name.startswith(prefix)), 4096)


@dataclass
class StoredCache:
    id: str
    key: str
    model: str  # "models/gemini-..."
    display_name: str
    contents: list
    system: Any
    tokens: int
    created: float
    updated: float
    expire: float

    def resource(self) -> dict:
        out = {"name": f"cachedContents/{self.id}", "model": self.model, "createTime": rfc3339(self.created),
               "updateTime": rfc3339(self.updated), "expireTime": rfc3339(self.expire),
               "usageMetadata": {"totalTokenCount": self.tokens}}
        if self.display_name:
            out["displayName"] = self.display_name
        return out


def _expiry(body: dict, now: float) -> float | None:
    ttl, at = wire.get(body, "ttl"), wire.get(body, "expireTime")
    if ttl is not None:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)s\s*", str(ttl))
        if not m:
            raise errors.invalid_argument(f"Invalid value at 'cached_content.ttl' (type.googleapis.com/google.protobuf.Duration), {ttl!r}")
        return now + float(m.group(1))
    if at is not None:
        from datetime import datetime

        try:
            return datetime.fromisoformat(str(at).replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise errors.invalid_argument(f"Invalid value at 'cached_content.expire_time', {at!r}") from None
    return None


class CacheStore:
    """The emulator's context caches; `handle` serves their routes (handler.py)."""

    def __init__(self, emu: Any, rng: random.Random) -> None:
        self.emu = emu
        self._rng = rng
        self._lock = threading.Lock()
        self._caches: dict[str, StoredCache] = {}
        self._created = self._deleted = 0

    # ----- python-side control ------------------------------------------------------------------
    def clear(self) -> None:
        with self._lock:
            self._caches.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self._created = self._deleted = 0

    def expire(self) -> int:
        """Every cache expires now (as if its TTL ran out); returns how many."""
        with self._lock:
            live = [c for c in self._caches.values() if c.expire > time.time()]
            for c in live:
                c.expire = time.time() - 1
            return len(live)

    def live(self) -> list[StoredCache]:
        now = time.time()
        with self._lock:
            return [c for c in self._caches.values() if c.expire > now]

    def snapshot(self) -> dict:
        return {"caches": {"live": len(self.live()), "created": self._created, "deleted": self._deleted}}

    # ----- the API ------------------------------------------------------------------------------
    def _get(self, cache_id: str, key: str) -> StoredCache:
        with self._lock:
            found = self._caches.get(cache_id)
        if found is None or found.expire <= time.time():
            raise errors.not_found(f"CachedContent not found (or permission denied): cachedContents/{cache_id}")
        if found.key != key:
            raise errors.ApiError(403, "PERMISSION_DENIED",
                                  f"You do not have permission to access the CachedContent cachedContents/{cache_id}.")
        return found

    def create(self, key: str, version: str, body: dict, count: Callable[..., dict]) -> dict:
        """`count`: generation.count_tokens (passed in by handler.py: generation reads this store)."""
        model = str(wire.get(body, "model") or "")
        name = model.rsplit("/", 1)[-1]
        families.check_model(name, version, "createCachedContent")
        contents = wire.get(body, "contents") or []
        if not isinstance(contents, list) or not contents:
            raise errors.invalid_argument("* CachedContent.contents: contents is not specified")
        system = wire.get(body, "systemInstruction")
        probe = {"contents": contents, **({"systemInstruction": system} if system is not None else {})}
        tokens = int(count(self.emu, json.dumps(probe).encode(), key, name, version)["totalTokens"])
        least = min_tokens(name)
        if tokens < least:
            raise errors.invalid_argument(f"Cached content is too small. total_token_count={tokens}, min_total_token_count={least}")
        now = time.time()
        expire = _expiry(body, now) or now + DEFAULT_TTL
        with self._lock:
            cache_id = "".join(self._rng.choice(string.ascii_lowercase + string.digits) for _ in range(12))
            stored = StoredCache(cache_id, key, f"models/{name}", str(wire.get(body, "displayName") or ""), contents,
                                 system, tokens, now, now, expire)
            self._caches[cache_id] = stored
            self._created += 1
        return stored.resource()

    def update(self, cache_id: str, key: str, body: dict) -> dict:
        stored = self._get(cache_id, key)
        expire = _expiry(body, time.time())
        if expire is None:
            raise errors.invalid_argument("Only ttl or expire_time can be updated.")
        with self._lock:
            stored.expire, stored.updated = expire, time.time()
        return stored.resource()

    def delete(self, cache_id: str, key: str) -> None:
        self._get(cache_id, key)
        with self._lock:
            self._caches.pop(cache_id, None)
            self._deleted += 1

    def list(self, key: str, query: dict) -> dict:
        mine = [c for c in self.live() if c.key == key]
        size = max(1, min(int((query.get("pageSize") or ["100"])[0]), 1000))
        start = int((query.get("pageToken") or ["0"])[0] or 0)
        out: dict = {"cachedContents": [c.resource() for c in mine[start:start + size]]}
        if start + size < len(mine):
            out["nextPageToken"] = str(start + size)
        return out

    def expand(self, body: dict, key: str, model: str) -> tuple[dict, int]:
        """A generateContent body naming a cache -> the body the model reads (the cache's system
        instruction and contents first) and the cached token count; (body, 0) when it names none."""
        ref = wire.get(body, "cachedContent")
        if not ref:
            return body, 0
        m = _NAME.search(str(ref))
        if not m:
            raise errors.invalid_argument(f"Invalid cached_content name: {ref!r}")
        with self._lock:
            stored = self._caches.get(m.group(1))
        if stored is None or stored.expire <= time.time() or stored.key != key:
            raise errors.ApiError(403, "PERMISSION_DENIED", f"CachedContent not found (or permission denied): {ref}")
        if wire.get(body, "systemInstruction") is not None:
            raise errors.invalid_argument("CachedContent can not be used with GenerateContent request setting system_instruction, "
                                          "tools or tool_config.\n\nProposed fix: move those values to CachedContent from "
                                          "GenerateContent request.")
        if stored.model.rsplit("/", 1)[-1] != model:
            raise errors.invalid_argument(f"Model used by GenerateContent request (models/{model}) and CachedContent "
                                          f"({stored.model}) has to be the same.")
        own = wire.get(body, "contents") or []
        merged = {**body, "contents": [*stored.contents, *(own if isinstance(own, list) else [own])]}
        merged.pop("cachedContent", None)
        merged.pop("cached_content", None)
        if stored.system is not None:
            merged["systemInstruction"] = stored.system
        return merged, stored.tokens

    # ----- HTTP ---------------------------------------------------------------------------------
    def handle(self, handler: Any, path: str, query: dict, raw: bytes, count: Callable[..., dict]) -> bool:
        """Serve a cachedContents route; False when the path is not one. `count`: generation.count_tokens."""
        emu, command = self.emu, handler.command
        if m := _LIST.match(path):
            route = {"POST": "cachedContents.create", "GET": "cachedContents.list"}.get(command)
        elif m := _ONE.match(path):
            route = {"GET": "cachedContents.get", "PATCH": "cachedContents.update",
                     "DELETE": "cachedContents.delete"}.get(command)
        else:
            return False
        if route is None:
            return False
        emu._count(route=route)
        key = emu._check_key(handler.headers.get("x-goog-api-key"))
        handler._faults(route)
        body = wire.json_body(raw) if command in ("POST", "PATCH") else {}
        if route == "cachedContents.create":
            handler._send_json(200, self.create(key, m.group(1), body, count))
        elif route == "cachedContents.list":
            handler._send_json(200, self.list(key, query))
        elif route == "cachedContents.get":
            handler._send_json(200, self._get(m.group(2), key).resource())
        elif route == "cachedContents.update":
            handler._send_json(200, self.update(m.group(2), key, body))
        else:
            self.delete(m.group(2), key)
            handler._send_json(200, {})
        return True
