"""Personal access tokens: made once, shown once, stored only as a SHA-256.

A token is `flt_` followed by 43 URL-safe characters (256 bits from `secrets`). The prefix
makes a leaked token recognisable to secret scanners and to people; the first characters are
kept (`ApiToken.prefix`) so a user can tell their tokens apart in the list. A fast hash is
enough here (unlike passwords): the secret has full entropy, so there is nothing to brute-force.

Every token expires (API_TOKEN_DEFAULT_DAYS unless its owner chose another lifetime, at most
API_TOKEN_MAX_DAYS), and a password change or reset can revoke all of a user's tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from functools import lru_cache

from sqlalchemy import bindparam, select, update

from flautim.models import ApiToken, Membership, User, db, utcnow
from flautim.web import flautim_config
from flautim.web.projects.access import with_membership_and_object

TOKEN_PREFIX = "flt_"
# Writing last_used_at on every call would turn each read into a write; a minute is precise
# enough to tell whether a token is still in use.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_NAME_LENGTH = 100


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TokenExpired(Exception):
    """The token was valid but its lifetime is over; `expires_at` says when it ended."""

    def __init__(self, expires_at):
        super().__init__(f"expired at {expires_at:%Y-%m-%d %H:%M} UTC")
        self.expires_at = expires_at


def lifetime_choices() -> list[int]:
    """The lifetimes (in days) a user may pick for a new token, the longest allowed last."""
    config = flautim_config()
    days = {7, 30, 90, 180, 365, config.API_TOKEN_DEFAULT_DAYS, config.API_TOKEN_MAX_DAYS}
    return sorted(d for d in days if d <= config.API_TOKEN_MAX_DAYS)


def create_token(user: User, name: str, days: int | None = None) -> tuple[ApiToken, str]:
    """A new token for `user`, valid for `days` (the site's default when None, capped at its
    maximum); returns the row and the secret (the only time it exists)."""
    config = flautim_config()
    days = min(config.API_TOKEN_MAX_DAYS, max(1, days or config.API_TOKEN_DEFAULT_DAYS))
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=name.strip()[:MAX_NAME_LENGTH],
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        token_hash=hash_token(secret),
        expires_at=utcnow() + timedelta(days=days),
    )
    db.session.add(token)
    db.session.commit()
    return token, secret


def revoke_token(user: User, token_id: int) -> bool:
    """Revoke one of `user`'s tokens; False when it is not theirs or already revoked."""
    token = db.session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
    )
    if token is None or token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    db.session.commit()
    return True


def revoke_all_tokens(user: User) -> int:
    """Revoke every live token of `user` (not committed); returns how many."""
    result = db.session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None), ApiToken.expires_at > utcnow())
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def tokens_of(user: User) -> list[ApiToken]:
    return list(
        db.session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
        )
    )


# One round trip for the token and its user, built once: this runs before every API call.
TOKEN_AND_USER = (
    select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == bindparam("token_hash"))
)


@lru_cache(maxsize=16)
def _token_user_and_object_query(model: type):
    # A project object's API call in one round trip instead of two; built once per model.
    return with_membership_and_object(TOKEN_AND_USER, model)


def user_for_secret(secret: str) -> User | None:
    """The active user a live token belongs to, recording its use; None otherwise.
    Raises TokenExpired for a token that was valid until its expiry."""
    if not _well_formed(secret):
        return None
    found = db.session.execute(TOKEN_AND_USER, {"token_hash": hash_token(secret)}).first()
    return _live_user(*found) if found is not None else None


def user_and_object_for_secret(
    secret: str, project_id: int, model: type, object_id: int
) -> tuple[User | None, Membership | None, object | None]:
    """user_for_secret's user, with the user's membership of `project_id` and `model`'s row
    `object_id` in that project (None where absent) from the same query."""
    if not _well_formed(secret):
        return None, None, None
    found = db.session.execute(
        _token_user_and_object_query(model),
        {"token_hash": hash_token(secret), "project_id": project_id, "object_id": object_id},
    ).first()
    if found is None:
        return None, None, None
    token, user, membership, obj = found
    user = _live_user(token, user)
    return (user, membership, obj) if user is not None else (None, None, None)


def _well_formed(secret: str) -> bool:
    return secret.startswith(TOKEN_PREFIX) and len(secret) <= 200


def _live_user(token: ApiToken, user: User) -> User | None:
    if token.revoked_at is not None or not user.active:
        return None
    now = utcnow()
    if token.expires_at <= now:
        raise TokenExpired(token.expires_at)
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        token.last_used_at = now
        db.session.commit()
    return user
