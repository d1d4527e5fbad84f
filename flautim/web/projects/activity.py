"""Sentences for the project's "Atividade" page, one per kind of audit event.

Other features record their own actions (uploads, runs); an action without a sentence here
is shown by its name and target, so nothing recorded is ever hidden.
"""

from __future__ import annotations

from flask_babel import gettext as _

from flautim.models import AuditEvent

from .roles import role_label


def _role(value: str | None) -> str:
    try:
        return role_label(value) if value else ""
    except ValueError:
        return value or ""


def describe_event(event: AuditEvent) -> str:
    d, t = event.detail or {}, event.target
    sentences = {
        "project.created": lambda: _("criou o projeto “%(name)s”", name=t),
        "project.renamed": lambda: _(
            "renomeou o projeto de “%(old)s” para “%(new)s”", old=d.get("old", ""), new=d.get("new", t)
        ),
        "project.described": lambda: _("alterou a descrição do projeto"),
        "project.archived": lambda: _("arquivou o projeto"),
        "project.unarchived": lambda: _("desarquivou o projeto"),
        "project.ownership_transferred": lambda: _("transferiu a propriedade para %(who)s", who=t),
        "member.invited": lambda: _(
            "convidou %(who)s como %(role)s", who=t, role=_role(d.get("role"))
        ),
        "invitation.resent": lambda: _("reenviou o convite para %(who)s", who=t),
        "invitation.revoked": lambda: _("cancelou o convite para %(who)s", who=t),
        "invitation.accepted": lambda: _(
            "aceitou o convite e entrou como %(role)s", role=_role(d.get("role"))
        ),
        "member.role_changed": lambda: _(
            "mudou o papel de %(who)s de %(old)s para %(new)s",
            who=t,
            old=_role(d.get("old")),
            new=_role(d.get("new")),
        ),
        "member.removed": lambda: _("removeu %(who)s do projeto", who=t),
        "member.left": lambda: _("saiu do projeto"),
    }
    sentence = sentences.get(event.action)
    if sentence is not None:
        return sentence()
    return f"{event.action} {t}".strip()
