"""Project scoping for token-authenticated requests, through projects.access like the pages."""

from __future__ import annotations

from flask import abort

from flautim.models import Experiment, Project, Role
from flautim.web.projects.access import (
    admit_object,
    get_project_object_or_404,
    get_project_or_404,
    valid_id,
)

from .auth import api_user, token_scope


def existing_id(value: int) -> int:
    if not valid_id(value):
        abort(404)
    return value


def scoped_project(project_id: int, needed: Role = Role.VIEWER) -> Project:
    """The project, if the token's user is a member with `needed` (404 / 403 otherwise)."""
    return get_project_or_404(existing_id(project_id), needed, user=api_user())


def scoped_experiment(project_id: int, experiment_id: int, needed: Role = Role.VIEWER) -> tuple[Project, Experiment]:
    """The project and the experiment, with scoped_project's answers first: fetched with the
    token where the request authenticated (auth.py), else in one query."""
    fetched = token_scope()
    if fetched is not None and (fetched.project_id, fetched.experiment_id) == (project_id, experiment_id):
        return admit_object(fetched.membership, fetched.experiment, needed)
    return get_project_object_or_404(existing_id(project_id), Experiment, experiment_id, needed, user=api_user())


def page(items: list, total: int, limit: int, offset: int) -> dict:
    return {"items": items, "total": total, "limit": limit, "offset": offset}
