"""Invitation tokens: only a SHA-256 of each token is stored; the token itself travels
once, in the email's link.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import func, select

from flautim.models import Invitation, Membership, Project, User, db, utcnow
from flautim.web import flautim_config

from .roles import role_label


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(invitation: Invitation) -> str:
    """Give `invitation` a fresh token and expiry; the old link stops working. Returns the token."""
    token = secrets.token_urlsafe(32)
    cfg = flautim_config()
    invitation.token_hash = hash_token(token)
    invitation.expires_at = utcnow() + timedelta(seconds=cfg.INVITATION_MAX_AGE_S)
    return token


def invitation_link(token: str) -> str:
    base = flautim_config().BASE_URL.rstrip("/")
    return f"{base}/invitations/{token}"


def find_by_token(token: str) -> Invitation | None:
    if not token or len(token) > 200:
        return None
    return db.session.scalar(select(Invitation).where(Invitation.token_hash == hash_token(token)))


def is_expired(invitation: Invitation) -> bool:
    return invitation.expires_at <= utcnow()


def is_pending(invitation: Invitation) -> bool:
    return invitation.accepted_at is None and not is_expired(invitation)


def pending_for_project(project: Project) -> list[Invitation]:
    return db.session.scalars(
        select(Invitation)
        .where(Invitation.project_id == project.id, Invitation.accepted_at.is_(None))
        .order_by(Invitation.created_at.desc())
    ).all()


def waiting_for(user: User) -> list[Invitation]:
    """Unexpired, unaccepted invitations sent to the user's email (e.g. before they signed up)."""
    return db.session.scalars(
        select(Invitation)
        .where(
            func.lower(Invitation.email) == user.email.lower(),
            Invitation.accepted_at.is_(None),
            Invitation.expires_at > utcnow(),
        )
        .order_by(Invitation.created_at.desc())
    ).all()


def member_with_email(project: Project, email: str) -> Membership | None:
    return db.session.scalar(
        select(Membership)
        .join(User, User.id == Membership.user_id)
        .where(Membership.project_id == project.id, func.lower(User.email) == email.lower())
    )


def pending_with_email(project: Project, email: str) -> Invitation | None:
    return db.session.scalar(
        select(Invitation).where(
            Invitation.project_id == project.id,
            func.lower(Invitation.email) == email.lower(),
            Invitation.accepted_at.is_(None),
        )
    )


def accept(invitation: Invitation, user: User) -> Membership:
    """Make `user` a member with the invited role (or keep a higher role they already have)."""
    invitation.accepted_at = utcnow()
    existing = db.session.scalar(
        select(Membership).where(
            Membership.project_id == invitation.project_id, Membership.user_id == user.id
        )
    )
    if existing is not None:
        if not existing.role.allows(invitation.role):
            existing.role = invitation.role
        return existing
    membership = Membership(project_id=invitation.project_id, user_id=user.id, role=invitation.role)
    db.session.add(membership)
    return membership


def send_invitation_email(invitation: Invitation, token: str, inviter: User) -> None:
    """Email the link. Raises what `send_mail` raises (the invitation stays; it can be resent)."""
    from flautim.web.mail import send_mail

    project = invitation.project
    subject = _("Convite para o projeto %(name)s no Flautim", name=project.name)
    days = max(1, round(flautim_config().INVITATION_MAX_AGE_S / 86400))
    body = _(
        "Olá!\n\n%(inviter)s convidou você para participar do projeto “%(project)s” no Flautim "
        "como %(role)s.\n\nPara aceitar, abra o link abaixo (válido por %(days)d dias). "
        "Se ainda não tem conta, crie uma com este e-mail: %(email)s\n\n%(link)s\n\n"
        "Se você não esperava este convite, ignore esta mensagem.\n",
        inviter=inviter.name,
        project=project.name,
        role=role_label(invitation.role),
        days=days,
        email=invitation.email,
        link=invitation_link(token),
    )
    send_mail(invitation.email, subject, body)

