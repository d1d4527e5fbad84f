"""How requests use the database: sessions made for GET and HEAD read in autocommit, and
pooled connections are pinged only after sitting idle (see flautim.models.session)."""

from __future__ import annotations

from flask import Flask

from flautim.models import db
from flautim.models.session import READS_AUTOCOMMIT, ping_after_idle


def init_app(app: Flask) -> None:
    with app.app_context():
        for engine in db.engines.values():
            ping_after_idle(engine)
    app.teardown_request(_unmark)


def _unmark(_error=None) -> None:
    # The session outlives the request where a caller holds the app context (tests, shells).
    if db.session.registry.has():
        db.session.info.pop(READS_AUTOCOMMIT, None)
