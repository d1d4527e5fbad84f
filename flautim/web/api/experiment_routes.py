"""Experiments through the API: create, clone, run, cancel; and what runs leave behind
(metrics, events, logs with catch-up, model artifacts)."""

from __future__ import annotations

from typing import Any

from flask import Response
from sqlalchemy import func, select

from flautim.models import Experiment, ExperimentState, Role, db
from flautim.web.experiments import baseline, client_curves, diagnoses, results, run_messages, runs
from flautim.web.experiments.display import artifact_download_name
from flautim.web.projects.access import scoped
from flautim.web.response_cache import cached_response, json_bytes
from flautim.web.stored_files import send_stored
from flautim.web.uploads import UserFacingError

from . import bp, log_pages
from . import schemas as s
from .asset_routes import user_error
from .auth import api_user
from .operations import answer, json_body, operation, query_args
from .scoping import existing_id, scoped_experiment, scoped_project

E = "/projects/<int:project_id>/experiments/<int:experiment_id>"
CHANGE_ERRORS = (400, 401, 403, 404, 409, 415)
ACTION_ERRORS = (401, 403, 404, 409)
READ_ERRORS = (400, 401, 404)


def _run_then_answer(project, experiment: Experiment, run: bool):
    if run:
        try:
            experiment = runs.run_experiment(project, api_user(), experiment)
        except UserFacingError as exc:
            # The experiment was created; say so, and why it did not start.
            raise user_error(exc, status=409) from None
    return answer(s.Experiment.model_validate(experiment), 201)


@bp.get("/projects/<int:project_id>/experiments")
@operation("Experimentos do projeto, mais novos primeiro", "experiments", query=s.ExperimentsQuery,
           responses={200: s.Page[s.Experiment]}, errors=READ_ERRORS)
def list_experiments(project_id: int):
    project = scoped_project(project_id)
    args = query_args()
    query = scoped(Experiment, project)
    if args.name is not None:
        query = query.where(Experiment.name == args.name)
    if args.state is not None:
        query = query.where(Experiment.state == ExperimentState(args.state))
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(query.order_by(Experiment.id.desc()).limit(args.limit).offset(args.offset))
    items = [s.Experiment.model_validate(e) for e in rows]
    return answer(s.Page[s.Experiment](items=items, total=total, limit=args.limit, offset=args.offset))


@bp.post("/projects/<int:project_id>/experiments")
@operation("Criar um experimento (e, com run=true, executá-lo)", "experiments", body=s.NewExperiment,
           responses={201: s.Experiment}, errors=CHANGE_ERRORS)
def create_experiment(project_id: int):
    project = scoped_project(project_id, Role.EDITOR)
    data = json_body()
    fields = data.model_dump(exclude={"run"})
    fields["description"] = fields["description"] or ""
    try:
        experiment = runs.create_experiment(project, api_user(), **fields)
    except UserFacingError as exc:
        raise user_error(exc) from None
    return _run_then_answer(project, experiment, data.run)


@bp.get(E)
@operation("Um experimento", "experiments", responses={200: s.Experiment}, errors=(401, 404))
def show_experiment(project_id: int, experiment_id: int):
    _project, experiment = scoped_experiment(project_id, experiment_id)
    return answer(s.Experiment.model_validate(experiment))


@bp.post(E + "/clone")
@operation("Clonar com mudanças (os campos omitidos vêm do original)", "experiments", body=s.CloneExperiment,
           responses={201: s.Experiment}, errors=CHANGE_ERRORS)
def clone_experiment(project_id: int, experiment_id: int):
    project, experiment = scoped_experiment(project_id, experiment_id, Role.EDITOR)
    data = json_body()
    changes = data.model_dump(exclude={"name", "run"}, exclude_none=True)
    try:
        clone = runs.clone_experiment(project, api_user(), experiment, name=data.name or None, **changes)
    except UserFacingError as exc:
        raise user_error(exc) from None
    return _run_then_answer(project, clone, data.run)


@bp.post(E + "/run")
@operation("Executar (uma nova tentativa)", "experiments", responses={202: s.Experiment}, errors=ACTION_ERRORS)
def run_experiment(project_id: int, experiment_id: int):
    project, experiment = scoped_experiment(project_id, experiment_id, Role.EDITOR)
    try:
        experiment = runs.run_experiment(project, api_user(), experiment)
    except UserFacingError as exc:
        # The only input is the experiment's state: any refusal is a conflict with it.
        raise user_error(exc, status=409) from None
    return answer(s.Experiment.model_validate(experiment), 202)


@bp.post(E + "/cancel")
@operation("Cancelar (na fila: já; em execução: em segundos)", "experiments", responses={202: s.Experiment},
           errors=ACTION_ERRORS)
def cancel_experiment(project_id: int, experiment_id: int):
    project, experiment = scoped_experiment(project_id, experiment_id, Role.EDITOR)
    try:
        experiment = runs.cancel_experiment(project, experiment)
    except UserFacingError as exc:
        raise user_error(exc, status=409) from None
    return answer(s.Experiment.model_validate(experiment), 202)


@bp.get(E + "/baseline")
@operation("O treino centralizado de referência e a comparação com ele", "results",
           responses={200: s.BaselineComparison}, errors=(401, 404))
def show_baseline(project_id: int, experiment_id: int):
    """The experiment's curves beside its centralized baseline's (the same Dataset and model
    on one client holding all the training data), on the evaluation both report, and the gap
    between their final values on the headline metric once both succeeded."""
    _project, experiment = scoped_experiment(project_id, experiment_id)
    return answer(s.BaselineComparison.model_validate(baseline.comparison(experiment)))


@bp.post(E + "/baseline")
@operation("Comparar com treino centralizado: criar (uma vez) e executar", "experiments",
           responses={202: s.BaselineComparison}, errors=ACTION_ERRORS)
def start_baseline(project_id: int, experiment_id: int):
    """Queue the experiment's centralized baseline, made on the first call: a child
    experiment with the same Dataset and model on one client holding all the training data,
    the same rounds and local epochs. One at a time per experiment: 409 while it is queued or
    running, or when the experiment has not succeeded."""
    project, experiment = scoped_experiment(project_id, experiment_id, Role.EDITOR)
    try:
        baseline.start_baseline(project, api_user(), experiment)
    except UserFacingError as exc:
        raise user_error(exc, status=409) from None
    return answer(s.BaselineComparison.model_validate(baseline.comparison(experiment)), 202)


# --- results ----------------------------------------------------------------------------

def _attempt(args, experiment: Experiment) -> int:
    return experiment.attempt if args.attempt is None else args.attempt


@bp.get(E + "/metrics")
@operation("Métricas por rodada (filtre por fonte, fase, nome; format=series para gráficos)", "results",
           query=s.MetricsQuery, errors=READ_ERRORS,
           responses={200: s.Metrics, 304: "Não mudou desde o ETag enviado em If-None-Match"})
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
    args = query_args()
    attempt = _attempt(args, experiment)
    filters = {"source": args.source, "phase": args.phase, "name": args.name}
    pages = {"round_min": args.round_min, "round_max": args.round_max, "after_round": args.after_round,
             "limit": args.limit}
    version = results.metrics_version(experiment, attempt)
    # Everything the body depends on; created_at tells apart a re-created database's ids.
    key = ("metrics", experiment.id, experiment.created_at.isoformat(), attempt, version, args.format,
           tuple(filters.items()), tuple(pages.values()))

    def build() -> bytes:
        return json_bytes(results.metric_rows(experiment, attempt, fmt=args.format, **filters, **pages))

    return cached_response(key, build)


@bp.get(E + "/client-curves")
@operation("Uma métrica por cliente: a dispersão por rodada (mín., mediana, máx.) e as curvas de até 8 clientes",
           "results", query=s.ClientCurvesQuery, responses={200: s.ClientCurves}, errors=READ_ERRORS)
def experiment_client_curves(project_id: int, experiment_id: int):
    """The spread of one metric across the clients per round (min, median and max, computed
    by the database) and the curves of the clients named in `clients`; at most the
    server's curve points (CURVE_MAX_POINTS) rounds, the last of each group of rounds."""
    _project, experiment = scoped_experiment(project_id, experiment_id)
    args = query_args()
    body = client_curves.client_curves(
        experiment, _attempt(args, experiment), name=args.name, phase=args.phase,
        clients=client_curves.parse_clients(args.clients), max_points=results.curve_max_points())
    return answer(s.ClientCurves.model_validate(body))


@bp.get(E + "/logs")
@operation("Linhas de log com id maior que `after` (retomada)", "results", query=s.LogsQuery,
           responses={200: s.Logs}, errors=READ_ERRORS)
def experiment_logs(project_id: int, experiment_id: int):
    """Catch-up: lines with id > `after`, oldest first, at most `limit`. Pass `next_after`
    back as `after` to continue (the same ids as the live stream's `id:`). Without a search,
    the page is put together from lines encoded once and kept (`log_pages`)."""
    _project, experiment = scoped_experiment(project_id, experiment_id)
    args = query_args()
    attempt = _attempt(args, experiment)
    if args.search is None:
        body = log_pages.page_body(experiment, attempt, args.after, args.limit, args.source)
        return Response(body, mimetype="application/json")
    rows = results.experiment_logs(experiment, attempt=attempt, after_id=args.after, source=args.source,
                                   search=args.search, limit=args.limit + 1)
    items = s.log_rows(rows[: args.limit])
    body = {"items": items, "next_after": items[-1]["id"] if items else args.after,
            "has_more": len(rows) > args.limit}
    return Response(json_bytes(body), mimetype="application/json")


@bp.get(E + "/events")
@operation("Eventos da execução com id maior que `after`", "results", query=s.EventsQuery,
           responses={200: s.Events}, errors=READ_ERRORS)
def experiment_events(project_id: int, experiment_id: int):
    """Events with id > `after` plus the experiment's state: what `flautim submit` follows."""
    _project, experiment = scoped_experiment(project_id, experiment_id)
    args = query_args()
    rows = results.experiment_events(experiment, attempt=_attempt(args, experiment), after_id=args.after,
                                     limit=args.limit + 1)
    language = run_messages.api_language()
    items = [_event(ev, language) for ev in rows[: args.limit]]
    response = answer(s.Events(items=items, next_after=items[-1].id if items else args.after,
                           has_more=len(rows) > args.limit, experiment=s.Experiment.model_validate(experiment)))
    response.headers["Content-Language"] = language.replace("_", "-")
    response.vary.add("Accept-Language")
    return response


def _event(row: Any, language: str) -> s.Event:
    event = s.Event.model_validate(row)
    message = run_messages.api_message(row.type, row.payload, language)
    if message is not None:
        event.message = s.EventMessage(**{k: v for k, v in message.items() if v is not None})
    return event


@bp.get(E + "/diagnoses")
@operation("Diagnósticos da execução (divergência, acaso, sobreajuste, heterogeneidade, hiperparâmetro "
           "ignorado)", "results", query=s.AttemptQuery, responses={200: s.Diagnoses}, errors=READ_ERRORS)
def experiment_diagnoses(project_id: int, experiment_id: int):
    """What looks wrong in the run, each with the round it began, what to try and its FAQ
    entry; the texts in the request's language (Accept-Language)."""
    _project, experiment = scoped_experiment(project_id, experiment_id)
    args = query_args()
    rows = diagnoses.experiment_diagnoses(experiment, _attempt(args, experiment))
    return answer(s.Diagnoses(items=[s.Diagnosis.model_validate(d) for d in rows]))


@bp.get(E + "/artifacts")
@operation("Modelos salvos (por rodada, o melhor e o final)", "models", query=s.ArtifactsQuery,
           responses={200: s.Artifacts}, errors=READ_ERRORS)
def list_artifacts(project_id: int, experiment_id: int):
    _project, experiment = scoped_experiment(project_id, experiment_id)
    args = query_args()
    items = [
        s.Artifact.model_validate(a)
        for a in results.experiment_artifacts(experiment, _attempt(args, experiment))
        if (args.kind is None or a.kind == args.kind) and (args.format is None or a.format == args.format)
    ]
    return answer(s.Artifacts(items=items))


@bp.get(E + "/artifacts/<int:artifact_id>/download")
@operation("Baixar um modelo salvo", "models", responses={200: "O arquivo (PyTorch .pt ou .safetensors)"},
           errors=(401, 404))
def download_artifact(project_id: int, experiment_id: int, artifact_id: int):
    project, experiment = scoped_experiment(project_id, experiment_id)
    artifact = results.artifact_in_experiment(project, experiment, existing_id(artifact_id))
    # Built from ids and a known kind, not the experiment's name: no user text in a header.
    filename = artifact_download_name(artifact, f"experiment-{experiment.id}-attempt{{attempt}}-{{kind}}-round{{round}}")
    response = send_stored(artifact.storage_path, as_attachment=True, download_name=filename,
                           mimetype="application/octet-stream")
    response.headers["X-Checksum-SHA256"] = artifact.sha256
    return response
