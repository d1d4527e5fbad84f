"""The WSGI entry point for gunicorn: `gunicorn wsgi:app` (configured by FLAUTIM_* variables)."""

from flautim.web import create_app

app = create_app()
