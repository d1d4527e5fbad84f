"""Projects and teams: create, share, roles, invitations."""

from flask import Blueprint, Flask

bp = Blueprint("projects", __name__, url_prefix="/projects")


def init_app(app: Flask) -> None:
    from . import routes  # noqa: F401
    from .invitation_pages import invitations_bp

    app.register_blueprint(bp)
    app.register_blueprint(invitations_bp)
