"""Experiments and project assets: datasets, model code, hyperparameters, runs, live pages."""

from flask import Blueprint, Flask

bp = Blueprint("experiments", __name__, url_prefix="/projects")


def init_app(app: Flask) -> None:
    from . import client_routes, display, export_routes, log_routes, routes  # noqa: F401

    display.init_app(app)
    app.register_blueprint(bp)
