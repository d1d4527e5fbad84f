"""The experiment page's client data, fetched by its script (static/js/clients.js): the
spread across clients per round, one round's per-client table and the partition's label
mix. The same services and bounds as the API's /clients routes (api/client_routes.py),
behind the page's login. Parameters the page never sends wrong are read leniently: a
value out of range is brought into it, an unknown one takes the default."""

from __future__ import annotations

from flask import g, jsonify, request

from flautim.models import Experiment, Role
from flautim.web.projects.access import project_object_or_404, require_role

from . import bp, client_results

E = "/<int:project_id>/experiments/<int:experiment_id>"


def _int(name: str) -> int | None:
    return request.args.get(name, type=int)


@bp.get(E + "/clients/summary.json")
@require_role(Role.VIEWER)
def client_summary(project_id: int, experiment_id: int):
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    return jsonify(client_results.round_summaries(
        experiment, phase=request.args.get("phase", "train"), round_max=_int("round_max"), limit=_int("limit")))


@bp.get(E + "/clients.json")
@require_role(Role.VIEWER)
def client_table(project_id: int, experiment_id: int):
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    return jsonify(client_results.client_table(
        experiment, round=_int("round"), sort=request.args.get("sort", "client"),
        order=request.args.get("order", "asc"), limit=_int("limit"), offset=_int("offset"),
        metric=request.args.get("metric") or None))


@bp.get(E + "/clients/label-mix.json")
@require_role(Role.VIEWER)
def label_mix(project_id: int, experiment_id: int):
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    return jsonify(client_results.label_mix(experiment, bars=_int("bars"), labels=_int("labels")))
