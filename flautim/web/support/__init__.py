"""Support tickets: the in-app contact form and the user's threads."""

from flask import Blueprint, Flask

bp = Blueprint("support", __name__, url_prefix="/support")


def init_app(app: Flask) -> None:
    from . import routes  # noqa: F401

    app.register_blueprint(bp)
