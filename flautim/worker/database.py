"""How the worker uses the database (flautim.database): one engine per process on the
configured database, and a session of its own for each block of work. No web app, no Flask."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine

from flautim.config import Config
from flautim.database import create_engine
from flautim.models import db

_lock = threading.Lock()
_engines: dict[tuple[int, str], Engine] = {}
_config: Config | None = None


def use_config(config: Config) -> None:
    """Set the configuration this worker process runs with."""
    global _config
    with _lock:
        _config = config


def current_config() -> Config:
    """The configuration this worker process runs with."""
    return _config or Config.from_env()


def engine_for(config: Config) -> Engine:
    """This process's engine on `config`'s database. A forked work horse makes its own, so
    no pooled connection is ever shared across a fork."""
    key = (os.getpid(), config.database_url)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            config.data_path.mkdir(parents=True, exist_ok=True)  # the default SQLite file's home
            engine = create_engine(config)
            for inherited in [k for k in _engines if k[0] != key[0]]:
                # A parent's: forget its pool without closing the parent's connections.
                _engines.pop(inherited).dispose(close=False)
            _engines[key] = engine
        return engine


@contextmanager
def session_scope(config: Config | None = None) -> Iterator[None]:
    """`db.session` in the block is a session of its own on the worker's database (of
    `config`, default the worker's), closed at the end."""
    with db.bound_to(engine_for(config or current_config())):
        yield
