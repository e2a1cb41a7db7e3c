"""Logging set-up shared by the CLI and gunicorn, with a filter that masks the Gemini API key."""

from __future__ import annotations

import logging
import os
import sys

_SECRET_ENV = ("GEMINI_API_KEY", "GOOGLE_API_KEY", "LABEL_STUDIO_API_KEY", "BASIC_AUTH_PASS")


class SecretFilter(logging.Filter):
    """Defence in depth: even if a library logs a secret, it never reaches the log output."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            masked = message
            for secret in self.secrets:
                masked = masked.replace(secret, "***")
            if masked != message:
                record.msg, record.args = masked, ()
        return True


# Libraries that log every request at INFO: google-genai says "AFC is enabled with max remote calls"
# for every generateContent call and httpx logs a line per HTTP request. On 400 tasks that was 4,000
# of 4,300 lines. They keep their warnings and errors; LOG_LEVEL=DEBUG shows everything.
QUIET_LOGGERS = ("google_genai", "httpx", "httpx2", "httpcore", "httpcore2", "urllib3")


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if getattr(root, "_gemini_ls_configured", False):
        return
    if logging.getLevelName(level) != logging.DEBUG:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"))
    handler.addFilter(SecretFilter([os.environ.get(n, "") for n in _SECRET_ENV]))
    root.addHandler(handler)
    root.setLevel(level)
    root._gemini_ls_configured = True  # type: ignore[attr-defined]
