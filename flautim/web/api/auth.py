"""Bearer-token authentication for /api/v1.

The API reads ONLY the `Authorization: Bearer` header. It never consults the session cookie
(Flask-Login's `current_user`): that is what makes exempting the API from CSRF safe — a
cross-site form can make the browser send cookies, never this header.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import g, request
from flask_babel import gettext as _

from flautim.models import Experiment, Membership, User
from flautim.web.projects.access import valid_id

from .errors import ApiError
from .tokens import TokenExpired, user_and_object_for_secret, user_for_secret

# Endpoints anyone may read (the API's own description).
PUBLIC_ENDPOINTS = frozenset({"api.openapi"})


@dataclass(frozen=True)
class TokenScope:
    """What the token's query fetched on an experiment's URL: the user's membership of
    `project_id` and the experiment `experiment_id` in it (None where absent). Only
    `scoping.scoped_experiment` reads it, for that same project and experiment."""

    project_id: int
    experiment_id: int
    membership: Membership | None
    experiment: Experiment | None


def api_user() -> User:
    """The user the current API request authenticated as."""
    return g.api_user


def token_scope() -> TokenScope | None:
    """The scope fetched with the token on this request's experiment URL, if any."""
    return g.api_token_scope


def authenticate_request() -> None:
    """`before_request` of the API blueprint: sets `g.api_user` or raises a 401."""
    g.api_user = g.api_token_scope = None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    header = request.headers.get("Authorization", "")
    scheme, _sep, secret = header.partition(" ")
    if not header:
        raise ApiError(401, _("Envie o token no cabeçalho Authorization: Bearer <token>."), code="missing_token")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, _("Cabeçalho Authorization inválido: use 'Bearer <token>'."), code="invalid_token")
    try:
        user = _authenticate(secret.strip())
    except TokenExpired as exc:
        raise ApiError(
            401,
            _(
                "Este token expirou em %(when)s UTC. Crie um novo na sua conta, em Tokens de acesso.",
                when=exc.expires_at.strftime("%Y-%m-%d %H:%M"),
            ),
            code="expired_token",
        ) from None
    if user is None:
        raise ApiError(401, _("Token de acesso inválido ou revogado."), code="invalid_token")
    g.api_user = user


def _authenticate(secret: str) -> User | None:
    """The token's user. On an experiment's URL, the same query also fetches the user's
    membership and the experiment (g.api_token_scope), which `scoping.scoped_experiment`
    then checks like any other lookup."""
    args = request.view_args or {}
    project_id, experiment_id = args.get("project_id"), args.get("experiment_id")
    if not (valid_id(project_id) and valid_id(experiment_id)):
        return user_for_secret(secret)
    user, membership, experiment = user_and_object_for_secret(secret, project_id, Experiment, experiment_id)
    if user is not None:
        g.api_token_scope = TokenScope(project_id, experiment_id, membership, experiment)
    return user
