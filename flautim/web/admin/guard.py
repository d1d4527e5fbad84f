"""The one gate of the admin panel: non-admins (and anonymous visitors) get 404."""

from __future__ import annotations

from flask import abort
from flask_login import current_user


def admins_only() -> None:
    """`before_request` of the whole admin blueprint. 404, not 403: the panel stays unlisted."""
    if not current_user.is_authenticated or not current_user.is_admin:
        abort(404)
