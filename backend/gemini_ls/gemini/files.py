"""The Files API layer: send each image inline or as an uploaded file, uploading each image once.

Policy (Settings.files_policy, env GEMINI_FILES):

* ``never``: always inline.
* ``always``: every image is uploaded once and referenced by URI from then on.
* ``auto`` (default): inline, unless the image is already uploaded (URI cached), or more than one
  Gemini request of the batch needs it (``uses > 1``: several controls, several tasks), or sending
  it inline would push the request past ``inline_limit_bytes`` (base64 makes bytes 4/3 bigger).
  Inline is cheapest for an image used once: an upload costs the same bytes plus two round trips.

Sharing: the cache key is ``{key_fingerprint}:{sha256 of the bytes sent}``, so every task, worker and
replica that sends the same bytes with the same API key reuses one upload. A URI only works for the
key that uploaded it, hence the fingerprint (never the key itself).

Single flight: an uncached image is uploaded by whoever takes the cache lock; everyone else polls
the cache until the URI appears, within their deadline. If the holder dies its lock expires and the
next waiter uploads. An upload that fails, ends FAILED or stays PROCESSING past our wait falls back
to inline (when the image fits) and is not cached.

While the shared cache is unreachable, an image that fits inline goes inline even when the policy
says "file": an upload nobody can find again would cost the bytes twice for nothing.

``generate`` makes a stale URI invisible: when Gemini rejects a file reference (expired,
deleted, another key's), the entry is evicted, the image re-uploaded and the call retried once.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Protocol

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from ..detections import RequestKind
from ..metrics import Metrics
from ..settings import Settings
from .cache import FILE_LIFETIME_SECONDS, FileCache, FileRef
from .daily import DailyUsage
from .errors import FileRejected, GeminiError, from_api_error

log = logging.getLogger(__name__)

Decision = Literal["inline", "file"]
POLICIES = ("auto", "always", "never")

# Room for what the request carries besides images and prompt text: JSON framing, generation
# config, response schema. Generous on purpose: the limit is a hard server-side rejection.
REQUEST_OVERHEAD_BYTES = 64 * 1024


class ImageLike(Protocol):
    """What we need of images/prepare.PreparedImage (read-only: that value is frozen)."""

    @property
    def name(self) -> str: ...
    @property
    def data(self) -> bytes: ...
    @property
    def mime_type(self) -> str: ...
    @property
    def sha256(self) -> str: ...


class Caller(Protocol):
    """gemini/request.GeminiCaller."""

    def generate(
        self, prompt: Any, parts: list[types.Part], kind: RequestKind, *, deadline: float, model: str | None = None,
        history: Sequence[types.Content] = (), cached_content: str | None = None,
    ) -> Any: ...


class FilesError(GeminiError):
    """An image that can only go as a file (too big to inline) could not be uploaded in time."""


# ----------------------------------------------------------------------------------------- pure


def inline_size(n_bytes: int) -> int:
    """Bytes `n_bytes` of image data take in the request: base64, 4 characters per 3 bytes."""
    return (n_bytes + 2) // 3 * 4


def decide(policy: str, image_bytes: int, request_bytes: int, uses: int, cached: bool, *, limit: int) -> Decision:
    """How to send one image.

    image_bytes: the image's raw size; request_bytes: everything else already in the request
    (prompt, overhead, images already going inline); uses: Gemini requests of the batch that need
    this image; cached: its URI is already known; limit: the inline request limit.
    """
    if policy == "never":
        return "inline"
    if policy == "always":
        return "file"
    if policy != "auto":
        raise ValueError(f"unknown files policy {policy!r}")
    if cached or uses > 1:
        return "file"
    return "file" if request_bytes + inline_size(image_bytes) > limit else "inline"


def prompt_size(prompt: Any) -> int:
    """Rough byte size of a gemini/prompts.Prompt (or any text) in the request."""
    if isinstance(prompt, str):
        return len(prompt.encode())
    total = 0
    for attr in ("system", "user"):
        text = getattr(prompt, attr, None)
        if isinstance(text, str):
            total += len(text.encode())
    schema = getattr(prompt, "response_schema", None)
    if schema is not None:
        total += len(repr(schema))
    return total


def is_file_rejection(exc: BaseException) -> bool:
    """Gemini refused a file reference: our FileRejected, or a raw SDK error of the same kind."""
    if isinstance(exc, FileRejected):
        return True
    if isinstance(exc, genai_errors.APIError):
        return isinstance(from_api_error(exc.code, exc.status, exc.message), FileRejected)
    return False


def _epoch(value: datetime | None, default: float) -> float:
    if value is None:
        return default
    if value.tzinfo is None:  # Gemini sends UTC ("...Z"); be explicit if pydantic dropped the zone
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


# ----------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class SentImage:
    """How one image of a request went out (ref is set when as a file)."""

    sha256: str
    key: str
    how: Decision
    ref: FileRef | None


@dataclass(frozen=True)
class BuiltParts:
    parts: list[types.Part]
    sent: list[SentImage]

    @property
    def file_refs(self) -> list[SentImage]:
        return [s for s in self.sent if s.ref is not None]


@dataclass(frozen=True)
class _Upload:
    ref: FileRef | None
    why_not: str = ""  # set when ref is None


# ----------------------------------------------------------------------------------------- manager


class FilesManager:
    """Builds the image parts of Gemini requests, uploading through the shared cache as needed.

    Thread-safe: it keeps no per-call state; sharing goes through `cache`. `deadline` values are
    absolute times on `clock` (time.monotonic, like GeminiCaller); expirations use `wall`.
    """

    def __init__(
        self,
        client: genai.Client,
        cache: FileCache,
        settings: Settings,
        metrics: Metrics,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        lock_ttl: float = 60.0,
        active_wait: float = 10.0,
        poll_initial: float = 0.05,
        poll_max: float = 0.5,
        usage: DailyUsage | None = None,
    ) -> None:
        self.usage = usage  # Files API cache hits and bytes saved for the jobs page (gemini/usage.py)
        if settings.files_policy not in POLICIES:
            raise ValueError(f"unknown files policy {settings.files_policy!r}")
        self.client = client
        self.cache = cache
        self.settings = settings
        self.metrics = metrics
        self._sleep = sleep
        self._clock = clock
        self._wall = wall
        # An upload of a few MB takes about a second; the lock only has to outlive a healthy one.
        # If its holder dies, waiters take over after this long (bounded by their deadline).
        self.lock_ttl = lock_ttl
        self.active_wait = active_wait  # longest wait for PROCESSING -> ACTIVE before going inline
        self.poll_initial = poll_initial
        self.poll_max = poll_max

    def __repr__(self) -> str:  # the client holds the key; never print it
        return f"FilesManager(policy={self.settings.files_policy!r})"

    # -- public API --------------------------------------------------------------------------------

    def cache_key(self, image: ImageLike) -> str:
        return f"{self.settings.key_fingerprint}:{image.sha256}"

    def generate(
        self,
        caller: Caller,
        prompt: Any,
        images: Sequence[ImageLike],
        uses: Mapping[str, int],
        kind: RequestKind,
        *,
        deadline: float,
        model: str | None = None,
        history: Any = None,
    ) -> Any:
        """caller.generate with these images; a rejected file URI is evicted, re-uploaded, retried once.

        `history`: a gemini/fewshot.History (example turns before the request). When Gemini rejects
        a file reference, the examples' files are evicted too and the retry goes without them: the
        examples are optional, the task is not. A history held in a context cache (`history.cache`,
        ctxcache.py) is sent as that cache's name, not as turns."""
        pbytes = prompt_size(prompt) + (history.inline_bytes if history is not None else 0)
        built = self.build(images, uses, deadline=deadline, prompt_bytes=pbytes)
        cached = getattr(history, "cache", None)
        contents = tuple(history.contents) if history is not None and not cached else ()
        try:
            return caller.generate(prompt, built.parts, kind, deadline=deadline, model=model, history=contents,
                                   cached_content=cached)
        except Exception as exc:
            stale = built.file_refs + ([s for s in history.sent if s.ref is not None] if history is not None else [])
            if not stale or not is_file_rejection(exc):
                raise
            log.info("Gemini rejected %d file reference(s) (%s); re-uploading once%s", len(stale), type(exc).__name__,
                     " without the few-shot examples" if contents or cached else "")
        for sent in stale:
            self.metrics.files_evictions.inc()
            # Compare-and-delete: if another replica already replaced the entry, keep its fresh URI.
            self.cache.delete(sent.key, expected=sent.ref)
        avoid = frozenset(s.ref.uri for s in stale if s.ref is not None)
        rebuilt = self.build(images, uses, deadline=deadline, prompt_bytes=pbytes, avoid_uris=avoid)
        return caller.generate(prompt, rebuilt.parts, kind, deadline=deadline, model=model)

    def build(
        self,
        images: Sequence[ImageLike],
        uses: Mapping[str, int],
        *,
        deadline: float,
        prompt_bytes: int = 0,
        avoid_uris: frozenset[str] = frozenset(),
    ) -> BuiltParts:
        """Parts for `images` plus how each was sent (`generate` needs the refs to evict stale ones)."""
        policy = self.settings.files_policy
        limit = self.settings.inline_limit_bytes
        distinct: dict[str, ImageLike] = {}
        for image in images:
            distinct.setdefault(image.sha256, image)

        cached: dict[str, FileRef | None] = {}
        if policy != "never":
            for sha, image in distinct.items():
                ref = self._lookup(self.cache_key(image), avoid_uris)
                self.metrics.files_cache.labels(result="hit" if ref else "miss").inc()
                if self.usage is not None:
                    self.usage.record_file_lookup(ref is not None, len(image.data))
                cached[sha] = ref

        # Images that must be files first; then the rest smallest first, so when several images
        # together pass the limit it is the big ones that become files.
        order = sorted(distinct.values(), key=lambda im: (cached.get(im.sha256) is None, len(im.data)))
        inline_bytes = REQUEST_OVERHEAD_BYTES + prompt_bytes
        how: dict[str, SentImage] = {}
        for image in order:
            key = self.cache_key(image)
            ref = cached.get(image.sha256)
            choice = decide(policy, len(image.data), inline_bytes, int(uses.get(image.sha256, 1)), ref is not None, limit=limit)
            if choice == "file" and ref is None:
                ref = self._obtain(image, key, deadline, avoid_uris, fits=inline_bytes + inline_size(len(image.data)) <= limit)
            if choice == "file" and ref is not None:
                how[image.sha256] = SentImage(image.sha256, key, "file", ref)
            else:
                inline_bytes += inline_size(len(image.data))
                how[image.sha256] = SentImage(image.sha256, key, "inline", None)

        parts: list[types.Part] = []
        sent: list[SentImage] = []
        for image in images:
            s = how[image.sha256]
            sent.append(s)
            if s.ref is not None:
                parts.append(types.Part.from_uri(file_uri=s.ref.uri, mime_type=s.ref.mime_type))
            else:
                self.metrics.image_bytes_sent.labels(how="inline").inc(len(image.data))
                parts.append(types.Part.from_bytes(data=image.data, mime_type=image.mime_type))
        return BuiltParts(parts, sent)

    # -- cache + single flight ---------------------------------------------------------------------

    def _lookup(self, key: str, avoid_uris: frozenset[str]) -> FileRef | None:
        ref = self.cache.get(key)
        if ref is None:
            return None
        if ref.uri in avoid_uris:  # Gemini just refused it; whoever put it back is wrong
            self.cache.delete(key, expected=ref)
            return None
        if ref.ttl_seconds(self._wall()) <= 0:  # about to expire: Redis TTL normally drops it first
            return None
        return ref

    def _obtain(self, image: ImageLike, key: str, deadline: float, avoid_uris: frozenset[str], *, fits: bool) -> FileRef | None:
        """The image's FileRef, uploading it (once across everyone sharing the cache) if needed.

        None means "send it inline" (only when it fits); FilesError when it does not fit.
        """
        if fits and not self.cache.available:
            return None  # see module docstring: no cache, no point uploading what fits inline
        # When inline is a way out, spend at most half the time left on the file, so the Gemini
        # call itself still has time; when it is not, the file is the only way: use it all.
        now = self._clock()
        budget_end = now + (deadline - now) / 2 if fits else deadline
        waited = False
        delay = self.poll_initial
        why_not = "the upload did not finish before the deadline"
        while True:
            token = self.cache.lock(key, self.lock_ttl)
            if token is not None:
                try:
                    # It may have been put between our first look and taking the lock.
                    ref = self._lookup(key, avoid_uris)
                    if ref is not None:
                        return ref
                    upload = self._upload(image, deadline, budget_end)
                    if upload.ref is not None:
                        ttl = upload.ref.ttl_seconds(self._wall())
                        if ttl > 0:
                            self.cache.put(key, upload.ref, ttl)
                        return upload.ref
                    why_not = upload.why_not
                    break
                finally:
                    self.cache.unlock(key, token)
            # Someone else is uploading it: wait for their URI (or for their lock to expire).
            if not waited:
                waited = True
                self.metrics.files_lock_waits.inc()
            if self._clock() + delay > budget_end:
                break
            self._sleep(delay)
            delay = min(delay * 2, self.poll_max)
            ref = self._lookup(key, avoid_uris)
            if ref is not None:
                return ref
            if fits and not self.cache.available:
                return None
        if fits:
            log.warning("image %s goes inline: %s", image.sha256[:12], why_not)
            return None
        raise FilesError(
            f"image '{image.name}' ({len(image.data)} bytes) is too large to send inline and {why_not}",
            retryable=True,
            reason="files",
        )

    # -- upload ------------------------------------------------------------------------------------

    def _http_options(self, deadline: float) -> types.HttpOptions | None:
        left = min(self.settings.request_timeout, deadline - self._clock())
        return types.HttpOptions(timeout=max(1, int(left * 1000)))

    def _upload(self, image: ImageLike, deadline: float, wait_end: float) -> _Upload:
        """Upload and wait for ACTIVE (until `wait_end`); the HTTP calls may run until `deadline`."""
        if deadline - self._clock() <= 0:
            return _Upload(None, "no time was left to upload it")
        config = types.UploadFileConfig(
            mime_type=image.mime_type,
            display_name=f"gemini-ls-{image.sha256[:12]}",
            http_options=self._http_options(deadline),
        )
        try:
            file = self.client.files.upload(file=io.BytesIO(image.data), config=config)
        except Exception as exc:  # SDK, HTTP or network: the reason is logged, the image goes inline
            why = _describe(exc, self.settings.api_key)
            log.warning("Files API upload of image %s failed: %s", image.sha256[:12], why)
            return _Upload(None, f"the upload failed ({why})")
        self.metrics.files_uploads.inc()
        self.metrics.files_uploaded_bytes.inc(len(image.data))
        self.metrics.image_bytes_sent.labels(how="file").inc(len(image.data))

        active, why_not = self._wait_active(file, deadline, wait_end)
        if active is None:
            return _Upload(None, why_not)
        file = active
        if not file.name or not file.uri:
            return _Upload(None, "the Files API answer had no name or URI")
        now = self._wall()
        return _Upload(
            FileRef(
                name=file.name,
                uri=file.uri,
                mime_type=file.mime_type or image.mime_type,
                expiration=_epoch(file.expiration_time, now + FILE_LIFETIME_SECONDS),
                size_bytes=int(file.size_bytes or len(image.data)),
            )
        )

    def _wait_active(self, file: types.File, deadline: float, wait_end: float) -> tuple[types.File | None, str]:
        """Poll files.get (with backoff) until ACTIVE; (None, why) on FAILED or when our wait ends."""
        end = min(wait_end, self._clock() + self.active_wait)
        delay = self.poll_initial
        while True:
            state = file.state
            # No state at all: nothing says it is not usable; Gemini's 400 would be handled anyway.
            if state is None or state == types.FileState.ACTIVE:
                return file, ""
            if not file.name:  # nothing to poll by: asking again could only fail until `end`
                return None, f"the uploaded file is {getattr(state, 'value', state)} and has no name to poll"
            if state == types.FileState.FAILED:
                self._discard(file)
                return None, "Gemini could not process the uploaded file (state FAILED)"
            if self._clock() + delay > end:
                self._discard(file)
                return None, f"the uploaded file was still {getattr(state, 'value', state)} after waiting"
            self._sleep(delay)
            delay = min(delay * 2, self.poll_max)
            try:
                file = self.client.files.get(name=file.name, config=types.GetFileConfig(http_options=self._http_options(deadline)))
            except Exception as exc:  # a failed poll is not a failed file: keep polling until `end`
                log.info("files.get %s failed while waiting for ACTIVE: %s", file.name, _describe(exc, self.settings.api_key))

    def _discard(self, file: types.File) -> None:
        """Best effort: a file we will never reference should not sit in the project's 20 GB."""
        if not file.name:
            return
        try:
            self.client.files.delete(name=file.name)
        except Exception as exc:
            log.info("could not delete unused file %s: %s", file.name, _describe(exc, self.settings.api_key))


def _describe(exc: BaseException, api_key: str | None) -> str:
    if isinstance(exc, genai_errors.APIError):
        return from_api_error(exc.code, exc.status, exc.message, api_key=api_key).message
    text = f"{type(exc).__name__}: {exc}"
    if api_key:
        text = text.replace(api_key, "***")
    return text[:300]
