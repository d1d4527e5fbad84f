"""Signed, expiring tokens for password resets and email changes (itsdangerous).

A reset token carries a digest of the user's current password hash: once the password
changes (for instance by using the token), the digest no longer matches and the token is
dead, so each link works once. An email-change token carries the pending address and the
current one; it dies when either changes.
"""

from __future__ import annotations

import hashlib

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from flautim.models import User, db
from flautim.web import flautim_config

RESET_SALT = "flautim.password-reset"
EMAIL_CHANGE_SALT = "flautim.email-change"


class TokenError(ValueError):
    """The token is invalid, expired or already used; `expired` tells which."""

    def __init__(self, expired: bool = False):
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _max_age() -> int:
    return int(flautim_config().TOKEN_MAX_AGE_S)


def _password_digest(user: User) -> str:
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:32]


def _load(salt: str, token: str) -> dict:
    try:
        data = _serializer(salt).loads(token, max_age=_max_age())
    except SignatureExpired as exc:
        raise TokenError(expired=True) from exc
    except BadSignature as exc:
        raise TokenError() from exc
    if not isinstance(data, dict):
        raise TokenError()
    return data


def make_reset_token(user: User) -> str:
    return _serializer(RESET_SALT).dumps({"u": user.id, "p": _password_digest(user)})


def user_for_reset_token(token: str) -> User:
    """The user the token was issued to, if it is still valid; TokenError otherwise."""
    data = _load(RESET_SALT, token)
    user = db.session.get(User, data.get("u")) if isinstance(data.get("u"), int) else None
    if user is None or not user.active or data.get("p") != _password_digest(user):
        raise TokenError()
    return user


def make_email_change_token(user: User, new_email: str) -> str:
    return _serializer(EMAIL_CHANGE_SALT).dumps({"u": user.id, "e": new_email, "c": user.email})


def email_change_for_token(token: str) -> tuple[User, str]:
    """(user, new email) if the token still matches the pending change; TokenError otherwise."""
    data = _load(EMAIL_CHANGE_SALT, token)
    user = db.session.get(User, data.get("u")) if isinstance(data.get("u"), int) else None
    if (
        user is None
        or not user.pending_email
        or data.get("e") != user.pending_email
        or data.get("c") != user.email
    ):
        raise TokenError()
    return user, user.pending_email
