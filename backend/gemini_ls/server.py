"""The Label Studio ML backend HTTP protocol: /health, /setup, /predict, /webhook, /metrics (and the
jobs page at / with its JSON under /api/, web/).

Speaks what Label Studio 1.23 sends and expects (see docs/operations.md). Every error is JSON with a
message and the right status, never an HTML traceback; the Gemini API key is never echoed.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import threading
import time
from collections import OrderedDict

from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from werkzeug.exceptions import HTTPException

from . import __version__, redisconn
from .backend import Backend, build_backend
from .labelconfig import LabelConfigError, ProjectSpec, parse_label_config
from .pages import control_modes
from .plan import plan_requests, request_budget_problem
from .predict import TaskOutcome
from .review.learning import project_id
from .settings import Settings
from .web import views as web_views
from .web.data import JobSource
from .web.gemini import gemini_panel

log = logging.getLogger("gemini_ls.server")

MODEL_CLASS = "GeminiBackend"
NOT_CONFIGURED = "NOT_CONFIGURED"  # /health's status with no key and no GEMINI_EMULATOR=embedded
NOT_CONFIGURED_REASON = "gemini_not_configured"


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, in_status_line: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.in_status_line = in_status_line


def _reason_phrase(message: str) -> str:
    """Label Studio shows `requests`' "<code> Client Error: <reason> for url" and drops the body, so
    the message must ride in the status line: printable ASCII only, one line, bounded."""
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in message)
    return " ".join(text.split())[:300] or "prediction failed"


def _spec_or_400(specs: SpecCache, body: dict, field: str, backend: Backend, route: str) -> ProjectSpec:
    """The parsed label config in body[field] ("schema" in /setup, "label_config" in /predict), or a
    400 that says what is wrong with it."""
    config = body.get(field)
    try:
        if config is not None and not isinstance(config, str):
            raise LabelConfigError(f"'{field}' must be the label config XML as a string, got {_json_type(config)}")
        spec = specs.get(config)
        control_modes(spec)  # a model_pages that is not auto|together|separate: 400 here, not per task
        problem = request_budget_problem(plan_requests(spec), backend.settings.max_requests_per_task)
        if problem is not None:
            raise LabelConfigError(problem)
        return spec
    except LabelConfigError as exc:
        backend.metrics.config_errors.labels(route).inc()
        log.warning("%s: rejected the label config: %s", route, exc)
        raise ApiError(400, f"label config: {exc}") from exc


def _not_configured(tasks: list, version: str, message: str, *, interactive: bool) -> Response:
    """Gemini not configured: no call, no image fetched, every task an error (no `result`, so Label
    Studio stores nothing); interactively an HTTP error, which is what Label Studio shows."""
    if interactive:
        raise ApiError(503, f"gemini-ls: {message}", in_status_line=True)
    outcomes = [TaskOutcome(task_id=t.get("id"), status="failed", error=message, reason=NOT_CONFIGURED_REASON)
                for t in tasks]
    return jsonify({"results": [o.to_response(version) for o in outcomes], "model_version": version})


def _json_type(value: object) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _optional_str(body: dict, field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"'{field}' must be a string, got {_json_type(value)}")
    return value


class SpecCache:
    """Parsed label configs by their text: /setup arrives before every selection and must be cheap."""

    def __init__(self, settings: Settings, size: int = 64) -> None:
        self._settings = settings
        self._size = size
        self._lock = threading.Lock()
        self._items: OrderedDict[str, ProjectSpec] = OrderedDict()

    def get(self, config: str | None) -> ProjectSpec:
        key = config or ""
        with self._lock:
            spec = self._items.get(key)
            if spec is not None:
                self._items.move_to_end(key)
                return spec
        spec = parse_label_config(config, self._settings.defaults)  # raises LabelConfigError
        for ignored in spec.ignored_reasons:  # once per config, not per /setup: Label Studio repeats it
            log.warning("label config: control %s; it gets no predictions", ignored)
        with self._lock:
            self._items[key] = spec
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return spec


def _json_body(max_bytes: int) -> dict:
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, f"request body is larger than MAX_REQUEST_BYTES={max_bytes}")
    raw = request.get_data(cache=False)
    if len(raw) > max_bytes:
        raise ApiError(413, f"request body is larger than MAX_REQUEST_BYTES={max_bytes}")
    if not raw.strip():
        raise ApiError(400, "request body is empty; expected a JSON object")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def _check_basic_auth(settings: Settings) -> None:
    if not settings.basic_auth_user:
        return
    header = request.headers.get("Authorization", "")
    ok = False
    if header.startswith("Basic "):
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
            ok = hmac.compare_digest(user, settings.basic_auth_user) and hmac.compare_digest(
                password, settings.basic_auth_pass or ""
            )
        except Exception:
            ok = False
    if not ok:
        raise ApiError(401, "authentication required (BASIC_AUTH_USER/BASIC_AUTH_PASS)")


def _metrics_text(backend: Backend) -> bytes:
    backend.refresh_job_metrics()
    extra = backend.review_metrics() + backend.batch_metrics.text()  # read from Redis: every process's
    extra += redisconn.metrics_text(backend.settings.redis_url)  # this process's Redis breaker
    multiproc = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry) + extra
    return generate_latest(backend.metrics.registry) + extra


def create_app(settings: Settings | None = None, backend: Backend | None = None) -> Flask:
    backend = backend or build_backend(settings or Settings.from_env())
    settings = backend.settings
    specs = SpecCache(settings)
    app = Flask("gemini_ls")
    # One byte over the limit: werkzeug stops reading a chunked body AT the limit without a word, so
    # only a read of limit+1 bytes can tell "exactly the limit" from "too large".
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes + 1
    app.extensions["gemini_ls"] = backend

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        response = jsonify({"status": "error", "error": exc.message})
        response.status = f"{exc.status} {_reason_phrase(exc.message)}" if exc.in_status_line else exc.status
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"request body is larger than MAX_REQUEST_BYTES={settings.max_request_bytes}"
        return jsonify({"status": "error", "error": message}), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return jsonify({"status": "error", "error": f"internal error: {type(exc).__name__}"}), 500

    @app.before_request
    def _auth():
        if request.path != "/health":
            _check_basic_auth(settings)

    @app.get("/health")
    def health():
        # Gemini not configured: still 200 (Label Studio checks only 2xx + JSON, the compose and image
        # healthchecks only 200, and connecting the backend is where a user reads this), but the status
        # and `error` say it; gemini.configured is false with the same message.
        problem = backend.not_configured
        return jsonify(
            {
                "status": "UP" if problem is None else NOT_CONFIGURED,
                **({"error": problem} if problem is not None else {}),
                "model_class": MODEL_CLASS,
                "version": __version__,
                "gemini": backend.gemini_status(),
                "redis": backend.redis_status(),
                "label_studio": backend.credentials.describe(),
                "jobs": backend.jobs_status(),
            }
        )

    @app.post("/setup")
    def setup():
        body = _json_body(settings.max_request_bytes)
        hostname, access_token = _optional_str(body, "hostname"), _optional_str(body, "access_token")
        backend.credentials.update_from_setup(hostname, access_token)
        spec = _spec_or_400(specs, body, "schema", backend, "/setup")
        answer = {"model_version": backend.model_version(backend.effective_spec(spec, project_id(body)))}
        if backend.not_configured is not None:
            # 200 all the same: a failed /setup fails Label Studio's connect, and its message there is
            # mangled; the per-task errors of /predict and /health carry the message
            answer["error"] = backend.not_configured
        return jsonify(answer)

    @app.post("/predict")
    def predict():
        started = time.monotonic()
        deadline = started + settings.predict_timeout
        body = _json_body(settings.max_request_bytes)
        tasks = body.get("tasks")
        if not isinstance(tasks, list):
            raise ApiError(400, "'tasks' must be a list of Label Studio tasks")
        if not all(isinstance(t, dict) for t in tasks):
            raise ApiError(400, "every entry of 'tasks' must be an object")
        params: dict = body["params"] if isinstance(body.get("params"), dict) else {}
        # Any context object, even {} (nothing drawn yet), is Label Studio's interactive mode.
        context = params.get("context") if params else None
        interactive = isinstance(context, dict) and len(tasks) == 1
        backend.metrics.predict_requests.labels("interactive" if interactive else "batch").inc()
        spec = _spec_or_400(specs, body, "label_config", backend, "/predict")
        plain = spec  # as the label config says, for the interactive answer (see below)
        spec = backend.effective_spec(spec, project_id(body))  # with the review loop's learned state
        version = backend.model_version(spec)
        if backend.not_configured is not None:
            return _not_configured(tasks, version, backend.not_configured, interactive=interactive)
        # What the annotator drew is answered by interactive/; nothing drawn yet ({}) is the whole
        # task; a selection goes through the one-click write-back (jobs/) when it is wired. What the
        # review loop learned (in the effective `spec`) applies to both. Not to what the annotator
        # drew, on purpose: there they name the label and point at the object themselves, and the
        # learned thresholds and synonyms, fitted to which pre-annotations annotators deleted or
        # relabelled, must not hide or rename the one object they asked for (docs/review-loop.md).
        drawn = backend.interactive.predict(tasks[0], plain, context, deadline=deadline) if interactive else None
        if drawn is not None:
            outcomes = [drawn]
        elif interactive:
            outcomes = backend.runner.run(tasks, spec, version, backend.fetch, deadline=deadline)
        else:
            outcomes = backend.predict_selection(tasks, spec, version, deadline=deadline, project=body.get("project"),
                                             label_config=body.get("label_config"))
        backend.metrics.predict_seconds.observe(time.monotonic() - started)
        if interactive and not outcomes[0].succeeded:
            # Interactive pre-annotation: an HTTP error is what Label Studio shows the annotator.
            raise ApiError(
                502 if outcomes[0].upstream else 422,
                f"gemini-ls: task {outcomes[0].task_id}: {outcomes[0].error or 'prediction failed'}",
                in_status_line=True,
            )
        return jsonify({"results": [o.to_response(version) for o in outcomes], "model_version": version})

    @app.post("/webhook")
    def webhook():
        body = _json_body(settings.max_request_bytes)
        action = body.get("action")
        if not isinstance(action, str) or not action:
            raise ApiError(400, "webhook body has no 'action'")
        summary = backend.on_webhook(body)
        return jsonify({"status": "ok", "action": action, **summary})

    @app.get("/metrics")
    def metrics():
        return Response(_metrics_text(backend), mimetype=CONTENT_TYPE_LATEST)

    # GET / is the jobs page for a browser and this health JSON for everything else (web/views.py)
    from .jobs.context import api_from
    from .web.actions import PrelabelActions

    prelabel = PrelabelActions(backend.settings, backend.pipeline, lambda: api_from(backend.settings, backend.credentials),
                               emulated=backend.emulator is not None)
    web_views.register(app, JobSource.from_settings(settings), backend.review.ledger if backend.review is not None else None,
                       actions_allowed=bool(settings.basic_auth_user), health=health, prelabel=prelabel,
                       gemini=lambda: gemini_panel(backend.settings, backend.rate_gate, backend.usage))
    return app
