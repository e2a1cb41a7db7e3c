"""The page and its JSON (docs/page.md): GET / (for a browser), /api/jobs, /api/jobs/<id>, and the
cancel action. Registered on the server's Flask app by server.py, behind its basic auth."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Blueprint, Flask, jsonify, redirect, render_template, request

from ..review import scorecards
from ..review.ledger import Ledger
from . import security
from .actions import ActionError, PrelabelActions, parse_request
from .calibration import CalibrationCache
from .data import STATES, JobSource
from .gemini import GeminiPanel
from .reports import CachedPanels, ScoreReader, one_project, project_report

REFRESH_MS = 2000  # the page polls /api/jobs this often while it is open


def wants_page() -> bool:
    """A browser (text/html preferred) gets the page at /; Label Studio and curl (*/*) the health JSON."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html" and request.accept_mimetypes["text/html"] > request.accept_mimetypes["application/json"]


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def number(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def timestamp(value: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(value))


def _score_reader(source: JobSource) -> ScoreReader | None:
    """The stored `evaluate` scorecards, read on the page's own Redis client (none without Redis)."""
    client, prefix = source.client, source.settings.redis_prefix
    if client is None:
        return None
    return lambda projects: scorecards.load_many(client, prefix, projects)


def register(app: Flask, source: JobSource, ledger: Ledger | None, *, actions_allowed: bool, health: Callable[[], Any],
             prelabel: PrelabelActions | None = None, gemini: Callable[[], GeminiPanel] | None = None) -> None:
    """`actions_allowed`: BASIC_AUTH_USER is set; without it the page and the JSON are read-only.
    `ledger`: the review loop's (None: no review loop, no project panels). `prelabel`: the job
    actions "Start prelabel" (estimate first, then start) and "Retry failed tasks" (web/actions.py;
    None: not offered, they answer 409). `gemini`: the Gemini panel's reader (web/gemini.py; None: no panel)."""
    scores = _score_reader(source)
    # REVIEW_LEARN=calibration: the predictions' scores are the calibrated ones (the diagram's caption says so)
    calibrations = CalibrationCache(ledger, "calibration" in source.settings.review_learn) if ledger is not None else None
    panels = CachedPanels(ledger) if ledger is not None else None
    bp = Blueprint("page", __name__, template_folder="templates", static_folder="static", static_url_path="/ui/static")

    @bp.after_request
    def _headers(response):
        return security.harden(response)

    def _error(status: int, message: str):
        return jsonify({"status": "error", "error": message}), status

    @bp.get("/")
    def index():
        if not wants_page():
            return health()
        token = security.token_for(request)
        try:
            jobs, problem = source.list_jobs(), None
            projects = panels.views() if panels is not None else []
            panel = gemini() if gemini is not None else None
        except (redis.RedisError, OSError) as exc:
            jobs, projects, panel, problem = [], [], None, f"Redis did not answer ({type(exc).__name__}); the page retries"
        response = app.make_response(render_template(
            "page.html", jobs=jobs, projects=projects, problem=problem, csrf=token, actions=actions_allowed, states=STATES,
            shared=source.client is not None, refresh_ms=REFRESH_MS, percent=percent, number=number, gemini=panel,
            prelabel=prelabel is not None))
        security.set_token(response, token, secure=request.is_secure)
        return response

    @bp.get("/projects/<int:project>")
    def project_page(project: int):
        try:
            view = one_project(ledger, project, scores, calibrations=calibrations) if ledger is not None else None
        except (redis.RedisError, OSError) as exc:
            return _error(503, f"Redis did not answer: {type(exc).__name__}; reload the page")
        if view is None:
            return _error(404, "no reviewed annotation of this project in the review ledger")
        token = security.token_for(request)
        response = app.make_response(render_template("project.html", p=view, problem=None, csrf=token, actions=actions_allowed,
                                                     shared=source.client is not None, refresh_ms=REFRESH_MS, percent=percent,
                                                     number=number))
        security.set_token(response, token, secure=request.is_secure)
        return response

    @bp.get("/api/jobs")
    def api_jobs():
        try:
            return jsonify([j.to_json() for j in source.list_jobs()])
        except (redis.RedisError, OSError) as exc:
            return _error(503, f"Redis did not answer: {type(exc).__name__}")

    @bp.get("/api/jobs/<path:job_id>")
    def api_job(job_id: str):
        try:
            job = source.get_job(job_id)
        except (redis.RedisError, OSError) as exc:
            return _error(503, f"Redis did not answer: {type(exc).__name__}")
        return jsonify(job.to_json()) if job is not None else _error(404, "no such job")

    @bp.get("/api/gemini")
    def api_gemini():
        if gemini is None:
            return _error(404, "no Gemini panel in this process")
        try:
            return jsonify(gemini().to_json(source.settings))
        except (redis.RedisError, OSError) as exc:
            return _error(503, f"Redis did not answer: {type(exc).__name__}")

    @bp.get("/api/projects/<int:project>/report")
    def api_project_report(project: int):
        try:
            body = project_report(ledger, project, scores, calibrations=calibrations) if ledger is not None else None
        except (redis.RedisError, OSError) as exc:
            return _error(503, f"Redis did not answer: {type(exc).__name__}")
        return jsonify(body) if body is not None else _error(404, "no reviewed annotation of this project in the review ledger")

    def _refused() -> Any:
        """None when the POST may act; else the error answer (read-only mode, CSRF)."""
        if not actions_allowed:
            return _error(403, "read-only: actions need BASIC_AUTH_USER/BASIC_AUTH_PASS (docs/page.md)")
        if not security.csrf_ok(request):
            return _error(403, "missing or wrong CSRF token: reload the page")
        return None

    def _done(body: dict[str, Any]):
        if request.form.get(security.FIELD):  # the page's form without script: back to the page
            return redirect("/", code=303)
        return jsonify({"status": "ok", **body})

    @bp.post("/api/jobs/<path:job_id>/cancel")
    def api_cancel(job_id: str):
        if (refused := _refused()) is not None:
            return refused
        try:
            ok = source.cancel(job_id)
        except (redis.RedisError, OSError) as exc:
            return _error(503, f"Redis did not answer: {type(exc).__name__}")
        if not ok:
            return _error(404, "no job by that id")
        return _done({"cancelled": job_id})

    def _prelabel_action(what: str):
        if (refused := _refused()) is not None:
            return refused
        if prelabel is None:
            return _error(409, "prelabel from the page is not available on this server")
        form = request.get_json(silent=True) if request.is_json else request.form
        try:
            req = parse_request(form or {})
            return jsonify(prelabel.estimate(req) if what == "estimate" else prelabel.start(req))
        except ActionError as exc:
            return _error(exc.status, exc.message)
        except (redis.RedisError, OSError) as exc:
            return _error(503, f"Redis did not answer: {type(exc).__name__}")

    @bp.post("/api/prelabel/estimate")
    def api_prelabel_estimate():
        """What `gemini-ls prelabel --estimate` prints, as JSON: shown before the job can start."""
        return _prelabel_action("estimate")

    @bp.post("/api/prelabel/start")
    def api_prelabel_start():
        return _prelabel_action("start")

    @bp.post("/api/jobs/<path:job_id>/retry")
    def api_retry(job_id: str):
        if (refused := _refused()) is not None:
            return refused
        if prelabel is None:
            return _error(409, "retry is not available on this server")
        try:
            return _done(prelabel.retry(job_id))
        except ActionError as exc:
            return _error(exc.status, exc.message)
        except (redis.RedisError, OSError) as exc:
            return _error(503, f"Redis did not answer: {type(exc).__name__}")

    app.jinja_env.filters["timestamp"] = timestamp
    app.register_blueprint(bp)
