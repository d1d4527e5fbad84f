"""How requests use the database: bound as every process binds it (flautim.database),
and sessions made for GET and HEAD read in autocommit (see flautim.models.session)."""

from __future__ import annotations

from flask import Flask, has_request_context, request

from flautim.database import bind_database
from flautim.models import db
from flautim.models.session import READS_AUTOCOMMIT, reads_in_autocommit_when

READ_METHODS = frozenset({"GET", "HEAD"})


def init_app(app: Flask) -> None:
    bind_database(app)
    reads_in_autocommit_when(_serving_a_read)
    app.teardown_request(_unmark)


def _serving_a_read() -> bool:
    return has_request_context() and request.method in READ_METHODS


def _unmark(_error=None) -> None:
    # The session outlives the request where a caller holds the app context (tests, shells).
    if db.session.registry.has():
        db.session.info.pop(READS_AUTOCOMMIT, None)
