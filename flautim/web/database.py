"""How requests use the database: GET and HEAD read in autocommit, pooled connections are
pinged only after sitting idle (see flautim.models.session for why)."""

from __future__ import annotations

from flask import Flask, request

from flautim.models import db
from flautim.models.session import READS_AUTOCOMMIT, ping_after_idle

READ_METHODS = frozenset({"GET", "HEAD"})


def init_app(app: Flask) -> None:
    with app.app_context():
        for engine in db.engines.values():
            ping_after_idle(engine)
    # First of the app's hooks: nothing may have taken a connection before it runs.
    app.before_request_funcs.setdefault(None, []).insert(0, _mark_reads)
    app.teardown_request(_unmark)


def _mark_reads() -> None:
    if request.method in READ_METHODS:
        db.session.info[READS_AUTOCOMMIT] = True


def _unmark(_error=None) -> None:
    # The session outlives the request where a caller holds the app context (tests, shells).
    db.session.info.pop(READS_AUTOCOMMIT, None)
