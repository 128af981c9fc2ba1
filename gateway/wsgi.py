"""WSGI entry point for gunicorn: ``gunicorn gateway.wsgi:app``."""

from gateway.app import create_app
from gateway.config import Settings

app = create_app(Settings.from_env())
