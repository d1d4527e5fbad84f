"""The page an invitation link opens: /invitations/<token>.

A visitor without an account is sent to sign up or log in with `next` pointing back here, so
someone who signs up later finds the invitation waiting. The token is single use, and only
the account with the invited email can accept it.
"""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from flautim.models import Invitation, db
from flautim.web import audit

from . import invitations as inv
from .access import membership_for
from .forms import ConfirmForm

invitations_bp = Blueprint("invitations", __name__, url_prefix="/invitations")


def _auth_link(endpoint: str, next_path: str, **values) -> str | None:
    if endpoint not in current_app.view_functions:
        return None
    return url_for(endpoint, next=next_path, **values)


def _problem(invitation: Invitation | None) -> tuple[int, str, str] | None:
    """(status, title, message) when the token cannot be used, else None."""
    if invitation is None:
        return (
            404,
            _("Convite inválido"),
            _(
                "Este link de convite não existe ou foi cancelado. Confira se copiou o link "
                "inteiro do e-mail, ou peça um novo convite ao dono do projeto."
            ),
        )
    if invitation.accepted_at is not None:
        return (
            410,
            _("Convite já usado"),
            _("Este convite já foi aceito. Cada convite só pode ser usado uma vez."),
        )
    if inv.is_expired(invitation):
        return (
            410,
            _("Convite expirado"),
            _("Este convite expirou. Peça ao dono do projeto para reenviá-lo."),
        )
    return None


def _render(token: str, invitation: Invitation | None, status: int = 200):
    problem = _problem(invitation)
    if problem is not None:
        code, title, message = problem
        return render_template("projects/invitation_invalid.html", title=title, message=message), code
    email_matches = current_user.is_authenticated and (
        current_user.email.lower() == invitation.email.lower()
    )
    already_member = current_user.is_authenticated and (
        membership_for(invitation.project_id) is not None
    )
    return (
        render_template(
            "projects/invitation.html",
            invitation=invitation,
            project=invitation.project,
            token=token,
            email_matches=email_matches,
            already_member=already_member,
            form=ConfirmForm(formdata=None),
            login_url=_auth_link("auth.login", request.path),
            # The sign-up form starts with the invited email filled in.
            signup_url=_auth_link("auth.signup", request.path, email=invitation.email),
        ),
        status,
    )


@invitations_bp.get("/<token>")
def show(token: str):
    return _render(token, inv.find_by_token(token))


@invitations_bp.post("/<token>")
def accept(token: str):
    invitation = inv.find_by_token(token)
    if not current_user.is_authenticated:
        from flautim.web.extensions import login_manager

        return login_manager.unauthorized()
    if _problem(invitation) is not None:
        return _render(token, invitation)
    if not ConfirmForm().validate_on_submit():
        return _render(token, invitation, 400)
    if current_user.email.lower() != invitation.email.lower():
        return _render(token, invitation, 403)
    membership = inv.accept(invitation, current_user)
    audit.record(
        "invitation.accepted", invitation.project, target=current_user.email, role=membership.role.value
    )
    db.session.commit()
    flash(
        _("Bem-vindo ao projeto “%(name)s”.", name=invitation.project.name),
        "success",
    )
    return redirect(url_for("projects.show", project_id=invitation.project_id))
