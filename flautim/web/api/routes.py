"""The /api/v1 routes about the API itself and projects, plus the blueprint's bearer check
and JSON errors. Every route of the API (here, asset_routes, experiment_routes) is thin:
scoping through projects.access, logic in the experiment services, its request and answers
declared once in schemas.py (`@operation`), from which openapi.py writes the document."""

from __future__ import annotations

from flask import current_app, g, jsonify

from flautim.web.projects.access import projects_of

from . import bp
from . import schemas as s
from .auth import api_user, authenticate_request
from .errors import register_error_handlers
from .openapi import openapi_document
from .operations import answer, operation, query_args
from .scoping import scoped_project

bp.before_request(authenticate_request)
register_error_handlers(bp)


@bp.get("/openapi.json")
@operation("Este documento OpenAPI", "meta", responses={200: "O documento OpenAPI 3.1 (JSON)"})
def openapi():
    # Generated once per process: the routes and models do not change while it runs.
    document = current_app.extensions.get("flautim_openapi")
    if document is None:
        document = current_app.extensions["flautim_openapi"] = openapi_document(current_app)
    return jsonify(document)


@bp.get("/me")
@operation("O usuário dono do token", "meta", responses={200: s.User}, errors=(401,))
def me():
    return answer(s.User.model_validate(api_user()))


# --- projects ---------------------------------------------------------------------------

@bp.get("/projects")
@operation("Projetos de que você é membro", "projects", query=s.PageQuery,
           responses={200: s.Page[s.Project]}, errors=(400, 401))
def list_projects():
    args = query_args()
    user = api_user()
    projects = projects_of(user)
    roles = {m.project_id: m for m in user.memberships}
    items = [s.Project.of(p, roles.get(p.id)) for p in projects[args.offset : args.offset + args.limit]]
    return answer(s.Page[s.Project](items=items, total=len(projects), limit=args.limit, offset=args.offset))


@bp.get("/projects/<int:project_id>")
@operation("Um projeto", "projects", responses={200: s.Project}, errors=(401, 404))
def show_project(project_id: int):
    project = scoped_project(project_id)
    return answer(s.Project.of(project, g.membership))
