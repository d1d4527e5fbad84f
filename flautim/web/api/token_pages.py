"""The HTML side of personal access tokens: list, create (shown once), revoke."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length

from flautim.models import db, utcnow
from flautim.web import flautim_config
from flautim.web.audit import record as audit_record

from . import tokens_bp
from .tokens import MAX_NAME_LENGTH, create_token, lifetime_choices, revoke_token, tokens_of


class TokenForm(FlaskForm):
    name = StringField(
        _l("Nome do token"),
        validators=[DataRequired(_l("Dê um nome ao token.")), Length(max=MAX_NAME_LENGTH)],
        description=_l("Para lembrar onde ele é usado, por exemplo: notebook do laboratório."),
    )
    days = SelectField(
        _l("Validade"),
        coerce=int,
        description=_l("Depois disso o token deixa de funcionar e você cria outro."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.days.choices = [
            (n, ngettext("%(num)d dia", "%(num)d dias", n)) for n in lifetime_choices()
        ]
        if self.days.data is None:
            self.days.data = flautim_config().API_TOKEN_DEFAULT_DAYS


class RevokeForm(FlaskForm):
    pass


def tokens_for_current_user() -> dict:
    """What `api/_tokens.html` needs, for any page that includes it."""
    if not current_user.is_authenticated:
        return {"tokens": [], "form": None, "revoke_form": None}
    return {
        "tokens": tokens_of(current_user),
        "form": TokenForm(),
        "revoke_form": RevokeForm(),
        "now": utcnow(),
    }


def _back() -> str:
    # Only same-site paths: the include may sit on the account page or on ours.
    target = request.form.get("next", "")
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return url_for("api_tokens.index")
    return target


@tokens_bp.get("/")
@login_required
def index():
    return render_template("api/tokens.html")


@tokens_bp.post("/")
@login_required
def create():
    form = TokenForm()
    if not form.validate_on_submit():
        return render_template("api/tokens.html", token_form=form), 400
    token, secret = create_token(current_user, form.name.data, days=form.days.data)
    audit_record(
        "api_token.create", target=f"token:{token.id}", name=token.name,
        expires_at=token.expires_at.isoformat(),
    )
    db.session.commit()
    # The secret is rendered in this response only: never flashed (the session cookie is
    # signed, not encrypted) and never stored.
    response = render_template("api/token_created.html", token=token, secret=secret, back=_back())
    return response, 201, {"Cache-Control": "no-store"}


@tokens_bp.post("/<int:token_id>/revoke")
@login_required
def revoke(token_id: int):
    form = RevokeForm()
    if not form.validate_on_submit():
        return redirect(_back())
    if revoke_token(current_user, token_id):
        audit_record("api_token.revoke", target=f"token:{token_id}")
        db.session.commit()
        flash(_("Token revogado. Programas que o usavam deixam de ter acesso."), "success")
    return redirect(_back())
