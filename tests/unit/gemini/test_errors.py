"""errors.py: user-facing messages, retryability, file rejections, and no key in any text."""

from __future__ import annotations

import pytest

from gemini_ls.gemini.errors import FileRejected, GeminiError, from_api_error, redact

KEY = "fake-gemini-key-do-not-leak-0123456789"


@pytest.mark.parametrize(
    ("code", "status", "message", "reason", "retryable"),
    [
        (400, "INVALID_ARGUMENT", "Request contains an invalid argument.", "invalid_argument", False),
        (404, "NOT_FOUND", "models/x is not found for API version v1beta, or is not supported for generateContent.", "not_found", False),
        (429, "RESOURCE_EXHAUSTED", "You exceeded your current quota. Please retry in 53.0s.", "rate_limited", True),
        (500, "INTERNAL", "An internal error has occurred.", "server", True),
        (502, None, "<html>Bad Gateway</html>", "server", True),
        (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", "server", True),
        (504, "DEADLINE_EXCEEDED", "Deadline expired", "timeout", True),
        (403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers", "permission_denied", False),
    ],
)
def test_classification(code, status, message, reason, retryable):
    error = from_api_error(code, status, message)
    assert type(error) is GeminiError
    assert (error.status, error.reason, error.retryable) == (code, reason, retryable)
    assert str(code) in str(error) and message[:20] in str(error)


def test_message_for_a_label_studio_user():
    error = from_api_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
    assert str(error) == "Gemini rejected the request: 400 INVALID_ARGUMENT: Request contains an invalid argument."


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        (400, "FAILED_PRECONDITION", "The File 5y6l7yja98jc is not in an ACTIVE state and usage is not allowed."),  # issue 10
        (403, "PERMISSION_DENIED", "You do not have permission to access the File abc123 or it may not exist."),  # issue 11
        (404, "NOT_FOUND", "File files/abc123 not found."),
    ],
)
def test_file_rejections(code, status, message):
    error = from_api_error(code, status, message)
    assert isinstance(error, FileRejected) and isinstance(error, GeminiError)
    assert error.reason == "file_rejected" and not error.retryable and error.status == code


def test_bad_api_key_400_as_gemini_sends_it():
    error = from_api_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
    assert error.reason == "bad_api_key" and not error.retryable
    assert str(error).startswith("Gemini refused the API key (400 INVALID_ARGUMENT)")


def test_bad_api_key():
    error = from_api_error(403, "PERMISSION_DENIED", "API key not valid. Please pass a valid API key.")
    assert error.reason == "bad_api_key" and "API key" in str(error)


def test_key_never_in_message_or_repr():
    error = from_api_error(400, "INVALID_ARGUMENT", f"API key {KEY} not valid", api_key=KEY)
    assert KEY not in str(error) and KEY not in repr(error) and "***" in str(error)


def test_redact():
    assert redact(f"x {KEY} y {KEY}", KEY) == "x *** y ***"
    assert redact("nothing", None) == "nothing"
    assert redact(f"k={KEY}", f"  {KEY}\n") == "k=***"


def test_long_bodies_are_shortened():
    error = from_api_error(502, None, "<html>" + "x" * 5000)
    assert len(str(error)) < 400


def test_unknown_code():
    error = from_api_error(None, None, None)
    assert isinstance(error, GeminiError) and not error.retryable
