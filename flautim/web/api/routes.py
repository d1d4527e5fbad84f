"""The /api/v1 routes about the API itself and projects, plus the blueprint's bearer check
and JSON errors. Every route of the API (here, asset_routes, experiment_routes) is thin:
scoping through projects.access, logic in the experiment services, serialisation by
allow-list, and described in openapi.py."""

from __future__ import annotations

from flask import g, jsonify

from flautim.web.projects.access import projects_of

from . import bp
from . import serializers as ser
from .auth import api_user, authenticate_request
from .errors import register_error_handlers
from .openapi import openapi_document
from .params import page_args
from .scoping import page, scoped_project

bp.before_request(authenticate_request)
register_error_handlers(bp)


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


@bp.get("/me")
def me():
    user = api_user()
    return jsonify({"id": user.id, "name": user.name, "email": user.email})


# --- projects ---------------------------------------------------------------------------

@bp.get("/projects")
def list_projects():
    limit, offset = page_args()
    user = api_user()
    projects = projects_of(user)
    roles = {m.project_id: m for m in user.memberships}
    items = [ser.project(p, roles.get(p.id)) for p in projects[offset : offset + limit]]
    return jsonify(page(items, len(projects), limit, offset))


@bp.get("/projects/<int:project_id>")
def show_project(project_id: int):
    project = scoped_project(project_id)
    return jsonify(ser.project(project, g.membership))
