"""The database for every process: the models' `db` bound to the site's database.

The web app's factory (flautim.web.database) and the worker's database app
(flautim.worker.app_context) both bind it here, the same way: the engine from
`Config.as_flask_mapping()` (SQLALCHEMY_DATABASE_URI and SQLALCHEMY_ENGINE_OPTIONS), its
pooled connections pinged only after sitting idle (flautim.models.session). Which sessions
read in autocommit is the web's choice, made in its own setup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flautim.models import db
from flautim.models.session import ping_after_idle

if TYPE_CHECKING:
    from flask import Flask


def bind_database(app: Flask) -> None:
    """Bind `db` to the database named in `app.config` (SQLALCHEMY_DATABASE_URI)."""
    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            ping_after_idle(engine)
