"""Experiments through the API: create, clone, run, cancel; and what runs leave behind
(metrics, events, logs with catch-up, model artifacts)."""

from __future__ import annotations

from flask import Response, jsonify, send_file
from flask_babel import gettext as _
from sqlalchemy import func, select

from flautim.models import MAX_ID, Experiment, ExperimentState, Role, db
from flautim.web.experiments import results, runs
from flautim.web.experiments.display import artifact_download_name
from flautim.web.projects.access import scoped
from flautim.web.response_cache import cached_response, json_bytes
from flautim.web.uploads import UserFacingError

from . import bp, log_pages
from . import serializers as ser
from .asset_routes import user_error
from .auth import api_user
from .errors import field_error
from .params import (
    body_bool,
    body_id,
    body_str,
    int_arg,
    json_body,
    page_args,
    reject_unknown_fields,
    str_arg,
)
from .scoping import existing_id, page, scoped_experiment, scoped_project

MAX_BIGINT = 2**63 - 1
STATES = {s.value for s in ExperimentState}
EXPERIMENT_FIELDS = {"name", "description", "dataset_id", "model_code_id", "hyperparameter_file_id", "run"}


def _run_then_serialize(project, experiment: Experiment, run: bool):
    if run:
        try:
            experiment = runs.run_experiment(project, api_user(), experiment)
        except UserFacingError as exc:
            # The experiment was created; say so, and why it did not start.
            raise user_error(exc, status=409) from None
    return jsonify(ser.experiment(experiment)), 201


@bp.get("/projects/<int:project_id>/experiments")
def list_experiments(project_id: int):
    project = scoped_project(project_id)
    limit, offset = page_args()
    query = scoped(Experiment, project)
    name = str_arg("name")
    if name is not None:
        query = query.where(Experiment.name == name)
    state = str_arg("state", 16)
    if state is not None:
        if state not in STATES:
            raise field_error("state", _("state deve ser um de: %(states)s", states=", ".join(sorted(STATES))))
        query = query.where(Experiment.state == ExperimentState(state))
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.order_by(Experiment.id.desc()).limit(limit).offset(offset))
    return jsonify(page([ser.experiment(e) for e in rows], total, limit, offset))


@bp.post("/projects/<int:project_id>/experiments")
def create_experiment(project_id: int):
    project = scoped_project(project_id, Role.EDITOR)
    data = json_body()
    reject_unknown_fields(data, EXPERIMENT_FIELDS)
    fields = dict(
        name=body_str(data, "name", required=True),
        description=body_str(data, "description", max_length=5000) or "",
        dataset_id=body_id(data, "dataset_id", required=True),
        model_code_id=body_id(data, "model_code_id", required=True),
        hyperparameter_file_id=body_id(data, "hyperparameter_file_id", required=True),
    )
    run = body_bool(data, "run", default=False)
    try:
        experiment = runs.create_experiment(project, api_user(), **fields)
    except UserFacingError as exc:
        raise user_error(exc) from None
    return _run_then_serialize(project, experiment, run)


@bp.get("/projects/<int:project_id>/experiments/<int:experiment_id>")
def show_experiment(project_id: int, experiment_id: int):
    _project, experiment = scoped_experiment(project_id, experiment_id)
    return jsonify(ser.experiment(experiment))


@bp.post("/projects/<int:project_id>/experiments/<int:experiment_id>/clone")
def clone_experiment(project_id: int, experiment_id: int):
    project, experiment = scoped_experiment(project_id, experiment_id, Role.EDITOR)
    data = json_body()
    reject_unknown_fields(data, EXPERIMENT_FIELDS)
    changes = {
        key: value
        for key, value in (
            ("description", body_str(data, "description", max_length=5000)),
            ("dataset_id", body_id(data, "dataset_id")),
            ("model_code_id", body_id(data, "model_code_id")),
            ("hyperparameter_file_id", body_id(data, "hyperparameter_file_id")),
        )
        if value is not None
    }
    name = body_str(data, "name")
    run = body_bool(data, "run", default=False)
    try:
        clone = runs.clone_experiment(project, api_user(), experiment, name=name or None, **changes)
    except UserFacingError as exc:
        raise user_error(exc) from None
    return _run_then_serialize(project, clone, run)


@bp.post("/projects/<int:project_id>/experiments/<int:experiment_id>/run")
def run_experiment(project_id: int, experiment_id: int):
    project, experiment = scoped_experiment(project_id, experiment_id, Role.EDITOR)
    try:
        experiment = runs.run_experiment(project, api_user(), experiment)
    except UserFacingError as exc:
        # The only input is the experiment's state: any refusal is a conflict with it.
        raise user_error(exc, status=409) from None
    return jsonify(ser.experiment(experiment)), 202


@bp.post("/projects/<int:project_id>/experiments/<int:experiment_id>/cancel")
def cancel_experiment(project_id: int, experiment_id: int):
    project, experiment = scoped_experiment(project_id, experiment_id, Role.EDITOR)
    try:
        experiment = runs.cancel_experiment(project, experiment)
    except UserFacingError as exc:
        raise user_error(exc, status=409) from None
    return jsonify(ser.experiment(experiment)), 202


# --- results ----------------------------------------------------------------------------

def _attempt_arg(experiment: Experiment) -> int:
    return int_arg("attempt", experiment.attempt, minimum=0, maximum=MAX_ID)


MAX_ROUNDS_PER_PAGE = 10_000


@bp.get("/projects/<int:project_id>/experiments/<int:experiment_id>/metrics")
def experiment_metrics(project_id: int, experiment_id: int):
    """Every number per round of one attempt, filtered by source, phase, name and rounds.

    `format=rows` (default): one object per number. `format=series`: one object per
    (phase, source, name) with parallel `rounds` and `values` lists — what a chart needs,
    a fifth of the bytes. Paging by round: `after_round` (exclusive) and `limit` (rounds
    per page); the answer then says `next_after_round` and `has_more`.

    The body is built once per version of the attempt's metrics (the newest row's id) and
    served from `response_cache` with an ETag until the worker stores more; the access
    check above runs on every request.
    """
    _project, experiment = scoped_experiment(project_id, experiment_id)
    attempt = _attempt_arg(experiment)
    fmt = str_arg("format", 8) or "rows"
    if fmt not in ("rows", "series"):
        raise field_error("format", _("format deve ser rows ou series."))
    filters = {key: str_arg(key, size) for key, size in (("source", 32), ("phase", 16), ("name", 64))}
    round_min = int_arg("round_min", None, minimum=0, maximum=MAX_ID)
    round_max = int_arg("round_max", None, minimum=0, maximum=MAX_ID)
    after_round = int_arg("after_round", None, minimum=-1, maximum=MAX_ID)
    limit = int_arg("limit", None, minimum=1, maximum=MAX_ROUNDS_PER_PAGE)
    version = results.metrics_version(experiment, attempt)
    # Everything the body depends on; created_at tells apart a re-created database's ids.
    key = ("metrics", experiment.id, experiment.created_at.isoformat(), attempt, version, fmt,
           tuple(filters.items()), round_min, round_max, after_round, limit)

    def build() -> bytes:
        return json_bytes(results.metric_rows(experiment, attempt, fmt=fmt, **filters, round_min=round_min,
                                              round_max=round_max, after_round=after_round, limit=limit))

    return cached_response(key, build)


@bp.get("/projects/<int:project_id>/experiments/<int:experiment_id>/logs")
def experiment_logs(project_id: int, experiment_id: int):
    """Catch-up: lines with id > `after`, oldest first, at most `limit`. Pass `next_after`
    back as `after` to continue (the same ids as the live stream's `id:`). Without a search,
    the page is put together from lines encoded once and kept (`log_pages`)."""
    _project, experiment = scoped_experiment(project_id, experiment_id)
    attempt = _attempt_arg(experiment)
    after = int_arg("after", 0, minimum=0, maximum=MAX_BIGINT)
    limit = int_arg("limit", 1000, minimum=1, maximum=5000)
    source, search = str_arg("source", 32), str_arg("search", 200)
    if search is None:
        return Response(log_pages.page_body(experiment, attempt, after, limit, source), mimetype="application/json")
    rows = results.experiment_logs(
        experiment, attempt=attempt, after_id=after, source=source, search=search, limit=limit + 1,
    )
    items = ser.log_rows(rows[:limit])
    body = {"items": items, "next_after": items[-1]["id"] if items else after, "has_more": len(rows) > limit}
    return Response(json_bytes(body), mimetype="application/json")


@bp.get("/projects/<int:project_id>/experiments/<int:experiment_id>/events")
def experiment_events(project_id: int, experiment_id: int):
    """Events with id > `after` plus the experiment's state: what `flautim submit` follows."""
    _project, experiment = scoped_experiment(project_id, experiment_id)
    attempt = _attempt_arg(experiment)
    after = int_arg("after", 0, minimum=0, maximum=MAX_BIGINT)
    limit = int_arg("limit", 500, minimum=1, maximum=5000)
    rows = results.experiment_events(experiment, attempt=attempt, after_id=after, limit=limit + 1)
    items = [ser.event(ev) for ev in rows[:limit]]
    return jsonify(
        {
            "items": items,
            "next_after": items[-1]["id"] if items else after,
            "has_more": len(rows) > limit,
            "experiment": ser.experiment(experiment),
        }
    )


@bp.get("/projects/<int:project_id>/experiments/<int:experiment_id>/artifacts")
def list_artifacts(project_id: int, experiment_id: int):
    _project, experiment = scoped_experiment(project_id, experiment_id)
    attempt = _attempt_arg(experiment)
    kind, fmt = str_arg("kind", 16), str_arg("format", 16)
    rows = [
        a
        for a in results.experiment_artifacts(experiment, attempt)
        if (kind is None or a.kind == kind) and (fmt is None or a.format == fmt)
    ]
    return jsonify({"items": [ser.artifact(a) for a in rows]})


@bp.get("/projects/<int:project_id>/experiments/<int:experiment_id>/artifacts/<int:artifact_id>/download")
def download_artifact(project_id: int, experiment_id: int, artifact_id: int):
    project, experiment = scoped_experiment(project_id, experiment_id)
    artifact = results.artifact_in_experiment(project, experiment, existing_id(artifact_id))
    path = results.artifact_file(artifact)
    # Built from ids and a known kind, not the experiment's name: no user text in a header.
    filename = artifact_download_name(artifact, f"experiment-{experiment.id}-attempt{{attempt}}-{{kind}}-round{{round}}")
    response = send_file(path, as_attachment=True, download_name=filename, mimetype="application/octet-stream")
    response.headers["X-Checksum-SHA256"] = artifact.sha256
    return response
