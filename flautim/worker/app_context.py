"""The app a worker process uses for database access (built once per process).

Only the database is bound to it (flautim.database, as the web binds it): no blueprints,
translations, rate limits or CSRF, and nothing of flautim.web. Its `extensions` hold the
Config under "flautim_config", as the web app's do.
"""

from __future__ import annotations

import os
import threading

from flask import Flask

from flautim.config import Config
from flautim.database import bind_database

_lock = threading.Lock()
_apps: dict[int, object] = {}
_config: Config | None = None


def use_config(config: Config) -> None:
    """Set the configuration the worker's app is built from; a new configuration means a
    new app (an app built from the old one would reach the old database and DATA_DIR)."""
    global _config
    with _lock:
        if config is not _config:
            _apps.clear()
        _config = config


def current_config() -> Config:
    """The configuration the worker's app is (or will be) built from."""
    return _config or Config.from_env()


def worker_app() -> Flask:
    """This process's app. A forked work horse builds its own, so no pooled connection
    is ever shared across a fork."""
    pid = os.getpid()
    with _lock:
        app = _apps.get(pid)
        if app is None:
            app = _database_app(current_config())
            _apps.clear()
            _apps[pid] = app
        return app


def _database_app(config: Config) -> Flask:
    config.data_path.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__, instance_path=str(config.data_path / "instance"))
    app.config.from_mapping(config.as_flask_mapping())
    app.extensions["flautim_config"] = config
    bind_database(app)
    return app
