"""The Flask application factory."""

from __future__ import annotations

import dataclasses
import logging

from flask import Flask
from werkzeug.routing import IntegerConverter

from flautim.config import Config
from flautim.models import MAX_ID

log = logging.getLogger(__name__)


class BoundedIntConverter(IntegerConverter):
    """Ids are 32-bit columns. A larger id in a URL names nothing: it becomes 0, which no
    row has, so the view answers as for any missing object (404, or 401 first on the API)
    instead of the database failing with "integer out of range"."""

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        return number if number <= MAX_ID else 0


def create_app(config: Config | None = None) -> Flask:
    """Build the web app. `config` defaults to `Config.from_env()` (FLAUTIM_* variables)."""
    config = config or Config.from_env()
    config.data_path.mkdir(parents=True, exist_ok=True)
    if not config.SECRET_KEY:
        from .security import load_or_create_secret_key

        config = dataclasses.replace(config, SECRET_KEY=load_or_create_secret_key(config.data_path))

    app = Flask(__name__, instance_path=str(config.data_path / "instance"))
    app.url_map.converters["int"] = BoundedIntConverter
    app.config.from_mapping(config.as_flask_mapping())
    app.extensions["flautim_config"] = config

    from flautim import redis_connection

    app.config["FLAUTIM_REDIS_URL_RESOLVED"] = redis_connection.redis_url(config)

    from . import database, extensions

    database.init_app(app)
    extensions.csrf.init_app(app)

    # Each subsystem binds itself; order matters only where one needs another.
    from . import (
        admin,
        api,
        auth,
        chrome,
        errors,
        experiments,
        help,
        i18n,
        main,
        projects,
        quotas,
        response_cache,
        security,
        support,
    )

    for subsystem in (
        security, i18n, errors, response_cache, chrome, auth, main, projects, experiments, quotas, support, help, admin, api
    ):
        subsystem.init_app(app)

    return app


def flautim_config(app: Flask | None = None) -> Config:
    from flask import current_app

    return (app or current_app).extensions["flautim_config"]
