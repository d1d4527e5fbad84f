"""The rules of a project's team: a project always keeps at least one owner."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import func, select

from flautim.models import Membership, Project, Role, db


class TeamRuleError(ValueError):
    """A change the rules forbid; the message says why, for the person who tried it."""


def owner_count(project: Project) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.project_id == project.id, Membership.role == Role.OWNER)
    )


def _keeps_an_owner(membership: Membership) -> None:
    if membership.role == Role.OWNER and owner_count(membership.project) <= 1:
        raise TeamRuleError(
            _(
                "O projeto precisa de pelo menos um dono. Transfira a propriedade para outro "
                "membro antes."
            )
        )


def change_role(membership: Membership, role: Role) -> Role:
    """Set a member's role; returns the old one."""
    old = membership.role
    if role != Role.OWNER:
        _keeps_an_owner(membership)
    membership.role = role
    return old


def remove_member(membership: Membership) -> None:
    _keeps_an_owner(membership)
    db.session.delete(membership)


def leave(membership: Membership) -> None:
    if membership.role == Role.OWNER and owner_count(membership.project) <= 1:
        raise TeamRuleError(
            _(
                "Você é o único dono deste projeto e não pode sair. Transfira a propriedade "
                "para outro membro ou exclua o projeto."
            )
        )
    db.session.delete(membership)


def transfer_ownership(current_owner: Membership, new_owner: Membership) -> None:
    """The chosen member becomes owner; the previous owner becomes an editor."""
    if new_owner.id == current_owner.id:
        raise TeamRuleError(_("Escolha outro membro para receber a propriedade."))
    if new_owner.project_id != current_owner.project_id:
        raise TeamRuleError(_("Essa pessoa não é membro deste projeto."))
    new_owner.role = Role.OWNER
    current_owner.role = Role.EDITOR
