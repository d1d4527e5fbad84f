"""The landing page, the dashboard and the language switch."""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from flautim.models import db
from flautim.web import flautim_config

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    if current_user.is_authenticated:
        return redirect(url_for("projects.list_projects"))
    return render_template("index.html")


@bp.post("/language")
def set_language():
    locale = request.form.get("locale", "")
    if locale not in flautim_config().LANGUAGES:
        abort(400)
    session["locale"] = locale
    if current_user.is_authenticated:
        current_user.locale = locale
        db.session.commit()
    target = request.form.get("next", "")
    # Only same-site relative paths: never an open redirect.
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("main.index")
    return redirect(target)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.jinja_env.globals["nav_links"] = nav_links


def nav_links(authenticated: bool, is_admin: bool) -> list[tuple[str, str]]:
    """Top-bar links for a visitor, a user or an admin, limited to endpoints that exist
    (chrome.topbar_links, which names who is asking)."""
    from flask_babel import gettext as _

    if authenticated:
        wanted = [("help.tutorial", _("Ajuda")), ("support.list_tickets", _("Suporte")), ("auth.account", _("Conta"))]
        if is_admin:
            wanted.append(("admin.dashboard", _("Admin")))
    else:
        wanted = [("help.tutorial", _("Ajuda")), ("auth.login", _("Entrar")), ("auth.signup", _("Criar conta"))]
    return [(e, label) for e, label in wanted if e in current_app.view_functions]
