"""The one way to reach a project's objects: every lookup is scoped to a membership.

Anyone who is not a member gets 404 (never 403), so a URL does not reveal that a project
exists. A member whose role is too low for the action gets 403.
"""

from __future__ import annotations

from typing import TypeVar

from flask import abort, g
from flask_login import current_user
from sqlalchemy import select

from flautim.models import Membership, Project, Role, db

T = TypeVar("T")


def membership_for(project_id: int, user=None) -> Membership | None:
    user = user or current_user
    if not user or not user.is_authenticated:
        return None
    return db.session.scalar(
        select(Membership).where(Membership.project_id == project_id, Membership.user_id == user.id)
    )


def get_project_or_404(project_id: int, needed: Role = Role.VIEWER, user=None) -> Project:
    """The project if the current user is a member with at least `needed`; 404 / 403 otherwise.

    Sets `g.project` and `g.membership` for templates and later lookups.
    """
    membership = membership_for(project_id, user)
    if membership is None:
        abort(404)
    if not membership.role.allows(needed):
        abort(403)
    g.project, g.membership = membership.project, membership
    return membership.project


def project_object_or_404(model: type[T], object_id: int, project: Project) -> T:
    """An object of `model` by id, only if it belongs to `project`."""
    obj = db.session.scalar(
        select(model).where(model.id == object_id, model.project_id == project.id)
    )
    if obj is None:
        abort(404)
    return obj


def scoped(model: type[T], project: Project):
    """A SELECT of `model` restricted to `project` (add filters and ordering to it)."""
    return select(model).where(model.project_id == project.id)


def projects_of(user=None):
    """The projects the user is a member of, newest first."""
    user = user or current_user
    return db.session.scalars(
        select(Project)
        .join(Membership, Membership.project_id == Project.id)
        .where(Membership.user_id == user.id)
        .order_by(Project.created_at.desc())
    ).all()
