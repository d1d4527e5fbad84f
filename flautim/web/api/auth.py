"""Bearer-token authentication for /api/v1.

The API reads ONLY the `Authorization: Bearer` header. It never consults the session cookie
(Flask-Login's `current_user`): that is what makes exempting the API from CSRF safe — a
cross-site form can make the browser send cookies, never this header.
"""

from __future__ import annotations

from flask import g, request
from flask_babel import gettext as _

from flautim.models import User

from .errors import ApiError
from .tokens import user_for_secret

# Endpoints anyone may read (the API's own description).
PUBLIC_ENDPOINTS = frozenset({"api.openapi"})


def api_user() -> User:
    """The user the current API request authenticated as."""
    return g.api_user


def authenticate_request() -> None:
    """`before_request` of the API blueprint: sets `g.api_user` or raises a 401."""
    g.api_user = None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    header = request.headers.get("Authorization", "")
    scheme, _sep, secret = header.partition(" ")
    if not header:
        raise ApiError(401, _("Envie o token no cabeçalho Authorization: Bearer <token>."), code="missing_token")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, _("Cabeçalho Authorization inválido: use 'Bearer <token>'."), code="invalid_token")
    user = user_for_secret(secret.strip())
    if user is None:
        raise ApiError(401, _("Token de acesso inválido ou revogado."), code="invalid_token")
    g.api_user = user
