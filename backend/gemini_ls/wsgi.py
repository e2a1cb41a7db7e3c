"""WSGI entry for gunicorn: `gunicorn gemini_ls.wsgi:app` builds the app from the environment."""

from .logsetup import configure_logging
from .server import create_app
from .settings import Settings

_settings = Settings.from_env()
configure_logging(_settings.log_level)
app = create_app(_settings)
