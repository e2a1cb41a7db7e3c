"""The page's safety (docs/page.md "Safety"): response headers and the CSRF check of its actions.

CSRF is a double-submit token: a random value in a SameSite=Strict, HttpOnly cookie and the same
value in the page, sent back with each POST (form field or X-CSRF-Token header). No server-side
secret, so it holds with WORKERS>1 and several replicas; another site can neither read the page's
token nor send the cookie.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Request, Response

COOKIE = "gemini_ls_csrf"
HEADER = "X-CSRF-Token"
FIELD = "csrf_token"

# Scripts and styles only from this server's own files: no inline script, no other origin.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def token_for(request: Request) -> str:
    """The token this browser already holds, or a new one (set on the response by `set_token`)."""
    current = request.cookies.get(COOKIE, "")
    return current if len(current) == 43 else secrets.token_urlsafe(32)


def set_token(response: Response, token: str, secure: bool) -> None:
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=secure, path="/")


def csrf_ok(request: Request) -> bool:
    cookie = request.cookies.get(COOKIE, "")
    sent = request.headers.get(HEADER) or request.form.get(FIELD, "")
    return len(cookie) == 43 and hmac.compare_digest(cookie, sent)


def harden(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response
