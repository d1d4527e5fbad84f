"""Support tickets: the in-app contact form and the user's threads."""

from flask import Blueprint, Flask

bp = Blueprint("support", __name__, url_prefix="/support")


def init_app(app: Flask) -> None:
    from . import routes  # noqa: F401

    app.register_blueprint(bp)
    # The footer shows it on every page; the settings are fixed for the app's life.
    from flautim.web import flautim_config

    app.jinja_env.globals["support_email"] = flautim_config(app).SUPPORT_EMAIL
