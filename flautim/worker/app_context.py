"""The Flask app a worker process uses for database access (built once per process)."""

from __future__ import annotations

import os
import threading

from flautim.config import Config

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


def worker_app():
    """This process's app. A forked work horse builds its own, so no pooled connection
    is ever shared across a fork."""
    pid = os.getpid()
    with _lock:
        app = _apps.get(pid)
        if app is None:
            from flautim.web import create_app

            app = create_app(current_config())
            _apps.clear()
            _apps[pid] = app
        return app
