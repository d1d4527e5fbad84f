"""Support tickets: opening, replying (user or staff) and the emails each step sends.

The row is committed before the email goes out, so a mail server that is down never loses
a message the user wrote; the failure is logged and the user is told it may be delayed.
"""

from __future__ import annotations

import logging

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from flautim.models import Experiment, SupportMessage, SupportTicket, User, db, utcnow
from flautim.web import flautim_config
from flautim.web.auth.emails import absolute_url
from flautim.web.mail import send_mail

log = logging.getLogger(__name__)


def tickets_of(user: User) -> list[SupportTicket]:
    return db.session.scalars(
        select(SupportTicket).where(SupportTicket.user_id == user.id).order_by(SupportTicket.updated_at.desc())
    ).all()


def ticket_of_user_or_none(ticket_id: int, user: User) -> SupportTicket | None:
    """The ticket only if `user` wrote it: users never see each other's tickets."""
    return db.session.scalar(
        select(SupportTicket).where(SupportTicket.id == ticket_id, SupportTicket.user_id == user.id)
    )


def open_ticket(
    user: User, subject: str, body: str, experiment: Experiment | None = None
) -> tuple[SupportTicket, bool]:
    """Store a new ticket and tell the support address; returns (ticket, email sent).
    `experiment`: one the user can see (the caller checked), shown to staff with the ticket."""
    ticket = SupportTicket(
        user_id=user.id, subject=subject, status="open", experiment_id=experiment.id if experiment else None
    )
    ticket.messages.append(SupportMessage(author_id=user.id, from_staff=False, body=body))
    db.session.add(ticket)
    db.session.commit()
    return ticket, _notify_staff(ticket, user, body, new=True)


def add_user_reply(ticket: SupportTicket, user: User, body: str) -> bool:
    ticket.messages.append(SupportMessage(author_id=user.id, from_staff=False, body=body))
    ticket.status, ticket.updated_at, ticket.closed_at = "open", utcnow(), None
    db.session.commit()
    return _notify_staff(ticket, user, body, new=False)


def add_staff_answer(ticket: SupportTicket, staff: User, body: str) -> bool:
    """Store an admin's answer and email it to the ticket's author with a link to the thread."""
    ticket.messages.append(SupportMessage(author_id=staff.id, from_staff=True, body=body))
    ticket.status, ticket.updated_at = "answered", utcnow()
    db.session.commit()
    user = ticket.user
    link = absolute_url("support.show_ticket", ticket_id=ticket.id)
    with force_locale(user.locale or current_app.config["BABEL_DEFAULT_LOCALE"]):
        subject = _("[Flautim suporte #%(id)d] Resposta: %(subject)s", id=ticket.id, subject=ticket.subject)
        text = _(
            "Olá, %(name)s.\n\nA equipe de suporte respondeu ao seu chamado \"%(subject)s\":\n\n"
            "%(body)s\n\nVeja a conversa completa e responda em:\n%(link)s\n",
            name=user.name,
            subject=ticket.subject,
            body=body,
            link=link,
        )
    return _send(user.email, subject, text)


def close_ticket(ticket: SupportTicket) -> None:
    ticket.status, ticket.closed_at, ticket.updated_at = "closed", utcnow(), utcnow()
    db.session.commit()


def _notify_staff(ticket: SupportTicket, user: User, body: str, new: bool) -> bool:
    cfg = flautim_config()
    link = absolute_url("admin.show_ticket", ticket_id=ticket.id)
    # Staff mail is in the site's default language.
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        subject = (
            _("[Flautim suporte #%(id)d] %(subject)s", id=ticket.id, subject=ticket.subject)
            if new
            else _("[Flautim suporte #%(id)d] Nova mensagem: %(subject)s", id=ticket.id, subject=ticket.subject)
        )
        text = _(
            "De: %(name)s <%(email)s>\nChamado #%(id)d: %(subject)s\n\n%(body)s\n\nResponder no painel: %(link)s\n",
            name=user.name,
            email=user.email,
            id=ticket.id,
            subject=ticket.subject,
            body=body,
            link=link,
        )
        experiment = ticket.experiment
        if experiment is not None:
            text += _(
                "\nSobre o experimento #%(id)d \"%(name)s\" do projeto \"%(project)s\" (estado: %(state)s):\n%(link)s\n",
                id=experiment.id,
                name=experiment.name,
                project=experiment.project.name,
                state=experiment.state.value,
                link=absolute_url("admin.show_experiment", experiment_id=experiment.id),
            )
    return _send(cfg.SUPPORT_EMAIL, subject, text, reply_to=user.email)


def _send(to: str, subject: str, text: str, reply_to: str | None = None) -> bool:
    try:
        send_mail(to, subject, text, reply_to=reply_to)
    except Exception:  # send_mail logged it with context; the ticket itself is saved
        return False
    return True
