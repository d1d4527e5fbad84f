"""How the web uses the database (flautim.database): each app has its own engine (tests build
several apps on different databases in one process), a session lives as long as its app
context (a request's, or one a caller pushed), and sessions made for GET and HEAD read in
autocommit."""

from __future__ import annotations

from flask import Flask, current_app, has_request_context, request
from flask.globals import app_ctx
from sqlalchemy.engine import Engine

from flautim.database import READS_AUTOCOMMIT, create_engine, reads_in_autocommit_when
from flautim.models import db

READ_METHODS = frozenset({"GET", "HEAD"})
ENGINE_KEY = "flautim_engine"


def init_app(app: Flask) -> None:
    app.extensions[ENGINE_KEY] = create_engine(app.extensions["flautim_config"])
    db.resolve_with(_app_context_id, lambda: engine_of(current_app))
    reads_in_autocommit_when(_serving_a_read)
    app.teardown_request(_unmark)
    app.teardown_appcontext(_remove_session)


def engine_of(app: Flask) -> Engine:
    return app.extensions[ENGINE_KEY]


def _app_context_id() -> int | None:
    # The scope is the app context itself: a request pushed inside one a caller holds (tests,
    # shells) shares its session, as Flask pushes no second context for the same app.
    try:
        return id(app_ctx._get_current_object())
    except RuntimeError:  # no app context
        return None


def _remove_session(_error=None) -> None:
    db.session.remove()


def _serving_a_read() -> bool:
    return has_request_context() and request.method in READ_METHODS


def _unmark(_error=None) -> None:
    # The session outlives the request where a caller holds the app context (tests, shells).
    if db.session.registry.has():
        db.session.info.pop(READS_AUTOCOMMIT, None)
