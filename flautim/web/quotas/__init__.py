"""What a project and its member use against their quotas, and why a queued run waits.
The rules themselves are in flautim/quotas.py."""

from flask import Blueprint, Flask

bp = Blueprint("quotas", __name__, url_prefix="/projects")


def init_app(app: Flask) -> None:
    from . import routes  # noqa: F401

    app.register_blueprint(bp)
