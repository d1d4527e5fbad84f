"""What happens to accounts, apart from the pages: creation, password changes, deletion."""

from __future__ import annotations

import logging

from sqlalchemy import func, select

from flautim import storage
from flautim.models import Membership, Project, Role, User, db
from flautim.web.stored_files import object_store

from .passwords import hash_password

log = logging.getLogger(__name__)


class EmailTaken(ValueError):
    pass


def email_in_use(email: str, except_user_id: int | None = None) -> bool:
    """True if an account has `email` as its address (compared in lower case)."""
    query = select(User.id).where(func.lower(User.email) == email.lower())
    if except_user_id is not None:
        query = query.where(User.id != except_user_id)
    return db.session.scalar(query.limit(1)) is not None


def create_account(name: str, email: str, password: str, is_admin: bool = False) -> User:
    """Add a user (not committed). The caller has validated the name and password strength."""
    email = email.strip().lower()
    if email_in_use(email):
        raise EmailTaken(email)
    user = User(name=name.strip(), email=email, password_hash=hash_password(password), is_admin=is_admin)
    db.session.add(user)
    db.session.flush()
    return user


def set_password(user: User, password: str) -> None:
    """Store a new password and end every session made before (they carry the old epoch)."""
    user.password_hash = hash_password(password)
    user.session_epoch = (user.session_epoch or 0) + 1


def _member_counts(user: User) -> list[tuple[Project, Role, int]]:
    counts = (
        select(Membership.project_id, func.count(Membership.id).label("n"))
        .group_by(Membership.project_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Project, Membership.role, counts.c.n)
        .join(Membership, Membership.project_id == Project.id)
        .join(counts, counts.c.project_id == Project.id)
        .where(Membership.user_id == user.id)
    ).all()
    return [(project, role, n) for project, role, n in rows]


def projects_blocking_deletion(user: User) -> list[Project]:
    """Projects the user owns that have other members: ownership must move first."""
    return [p for p, role, n in _member_counts(user) if role == Role.OWNER and n > 1]


def projects_deleted_with(user: User) -> list[Project]:
    """Projects where the user is the only member: they go with the account."""
    return [p for p, _role, n in _member_counts(user) if n == 1]


def is_last_admin(user: User) -> bool:
    if not user.is_admin:
        return False
    others = db.session.scalar(
        select(func.count(User.id)).where(User.is_admin.is_(True), User.active.is_(True), User.id != user.id)
    )
    return others == 0


def delete_account(user: User) -> list[int]:
    """Delete the user and their sole-member projects (rows and files); returns those ids.

    The caller has checked `projects_blocking_deletion` is empty. Commits.
    """
    doomed = projects_deleted_with(user)
    project_ids = [p.id for p in doomed]
    for project in doomed:
        db.session.delete(project)
    db.session.delete(user)
    db.session.commit()
    for project_id in project_ids:
        try:
            object_store().delete_tree(storage.project_key(project_id))
        except Exception:
            # The rows are gone already; leftover files are only space, so log it.
            log.exception("could not remove the stored files of project %s", project_id)
    return project_ids
