"""A run's results as files through the API: the metrics as CSV, JSON or a TensorBoard log
folder (zip), and the events as JSON Lines — the same bodies as the page's downloads."""

from __future__ import annotations

from flautim.web.experiments.export_routes import export_response

from . import bp
from . import schemas as s
from .experiment_routes import READ_ERRORS, E
from .operations import operation, query_args
from .scoping import scoped_experiment


def _export(project_id: int, experiment_id: int, what: str, suffix: str):
    _project, experiment = scoped_experiment(project_id, experiment_id)
    args = query_args()
    attempt = experiment.attempt if args.attempt is None else args.attempt
    # Built from ids only: no user text in a header.
    filename = f"experiment-{experiment.id}-attempt{attempt}-{suffix}"
    return export_response(experiment, attempt, what, filename)


@bp.get(E + "/export/metrics.csv")
@operation("Métricas da tentativa em CSV (toda rodada, todo cliente, toda métrica)", "results",
           query=s.AttemptQuery, errors=READ_ERRORS,
           responses={200: "CSV (UTF-8): attempt, round, phase, source, name, value; textos nunca "
                           "começam como fórmula de planilha"})
def export_metrics_csv(project_id: int, experiment_id: int):
    return _export(project_id, experiment_id, "metrics.csv", "metrics.csv")


@bp.get(E + "/export/metrics.json")
@operation("Métricas da tentativa em JSON (toda rodada, todo cliente, toda métrica; sem páginas)", "results",
           query=s.AttemptQuery, errors=READ_ERRORS, responses={200: s.MetricsExport})
def export_metrics_json(project_id: int, experiment_id: int):
    return _export(project_id, experiment_id, "metrics.json", "metrics.json")


@bp.get(E + "/export/tensorboard.zip")
@operation("Métricas da tentativa como pasta de logs do TensorBoard (zip)", "results",
           query=s.AttemptQuery, errors=READ_ERRORS,
           responses={200: "Zip com um run do TensorBoard por fonte (aggregate, server, client-N); "
                           "tags fase/métrica, passo = rodada"})
def export_tensorboard(project_id: int, experiment_id: int):
    return _export(project_id, experiment_id, "tensorboard.zip", "tensorboard.zip")


@bp.get(E + "/export/events.jsonl")
@operation("Eventos da tentativa em JSON Lines (um objeto Event por linha)", "results",
           query=s.AttemptQuery, errors=READ_ERRORS,
           responses={200: "JSON Lines: id, attempt, type, payload, created_at por linha"})
def export_events(project_id: int, experiment_id: int):
    return _export(project_id, experiment_id, "events.jsonl", "events.jsonl")
