"""The user's side of support: the contact form, the list of their tickets, each thread."""

from __future__ import annotations

import re

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from flautim.models import Experiment
from flautim.web import flautim_config
from flautim.web.extensions import limiter
from flautim.web.projects.access import visible_object_or_none

from . import bp
from .forms import NOT_ATTACHABLE, ReplyForm, TicketForm
from .tickets import add_user_reply, open_ticket, ticket_of_user_or_none, tickets_of


@bp.before_request
@login_required
def _logged_in_only():
    return None


def _support_limit() -> str:
    return flautim_config().SUPPORT_LIMIT_PER_USER


def _user_key() -> str:
    return f"support-user:{current_user.id}"


# Every message emails the support address: a per-user limit keeps a script from flooding it.
_limit_messages = limiter.shared_limit(
    _support_limit, scope="support-messages", key_func=_user_key, methods=["POST"]
)


@bp.get("/")
def list_tickets():
    return render_template("support/list.html", tickets=tickets_of(current_user))


@bp.route("/new", methods=["GET", "POST"])
@_limit_messages
def new_ticket():
    """The contact form; `?experiment=ID` (the failed run's "Falar com o suporte") attaches
    that experiment, if the user can see it: 404 otherwise, as its own page would answer."""
    form = TicketForm()
    if request.method == "GET":
        form.experiment.data = request.args.get("experiment", "")
    experiment = _attachable_experiment(form.experiment.data)
    if request.method == "GET" and form.experiment.data:
        if experiment is None:
            abort(404)
        form.subject.data = _("Experimento \"%(name)s\" (#%(id)d)", name=experiment.name, id=experiment.id)
    if form.validate_on_submit():
        if form.experiment.data and experiment is None:
            form.experiment.errors.append(NOT_ATTACHABLE)
        else:
            ticket, sent = open_ticket(current_user, form.subject.data, form.message.data, experiment)
            _flash_sent(sent, _("Mensagem enviada ao suporte. Você receberá a resposta por email e aqui."))
            return redirect(url_for("support.show_ticket", ticket_id=ticket.id))
    return (
        render_template("support/new.html", form=form, experiment=experiment),
        400 if form.errors else 200,
    )


def _attachable_experiment(value: str | None) -> Experiment | None:
    if not value or not re.fullmatch(r"[0-9]{1,10}", value):
        return None
    return visible_object_or_none(Experiment, int(value), current_user)


@bp.route("/<int:ticket_id>", methods=["GET", "POST"])
@_limit_messages
def show_ticket(ticket_id: int):
    ticket = ticket_of_user_or_none(ticket_id, current_user)
    if ticket is None:
        abort(404)
    form = ReplyForm()
    if form.validate_on_submit():
        sent = add_user_reply(ticket, current_user, form.body.data)
        _flash_sent(sent, _("Resposta enviada ao suporte."))
        return redirect(url_for("support.show_ticket", ticket_id=ticket.id))
    return render_template("support/ticket.html", ticket=ticket, form=form), 400 if form.errors else 200


def _flash_sent(sent: bool, message: str) -> None:
    if sent:
        flash(message, "success")
    else:
        flash(
            _("Sua mensagem foi guardada, mas o aviso por email ao suporte falhou; ela será lida no painel."),
            "warning",
        )
