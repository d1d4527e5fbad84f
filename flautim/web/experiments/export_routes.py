"""Downloads of a run's results from the experiment page: metrics as CSV, JSON or a
TensorBoard log folder, and the events as JSON Lines (beside the log's download).

Each view scopes the experiment first (an outsider gets 404, as for the log) and streams
the body `exports` writes; the file names are built from ids only, never user text.
"""

from __future__ import annotations

from flask import Response, abort, request, stream_with_context
from flask_babel import gettext as _
from flask_login import login_required

from flautim.models import MAX_ID, Experiment
from flautim.web import flautim_config
from flautim.web.projects.access import get_project_object_or_404

from . import bp, exports

E = "/<int:project_id>/experiments/<int:experiment_id>"


def streamed(body, mimetype: str, filename: str) -> Response:
    """An attachment streamed from `body` (a generator reading the database as it goes)."""
    return Response(
        stream_with_context(body),
        mimetype=mimetype,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def export_response(experiment: Experiment, attempt: int, what: str, filename: str) -> Response:
    """The export `what` (EXPORTS) of an experiment already scoped, as `filename`."""
    if what == "metrics.csv":
        return streamed(exports.metrics_csv(experiment, attempt), "text/csv; charset=utf-8", filename)
    if what == "metrics.json":
        return streamed(exports.metrics_json(experiment, attempt), "application/json", filename)
    if what == "events.jsonl":
        return streamed(exports.events_jsonl(experiment, attempt), "application/x-ndjson", filename)
    # Imported here: tensorboard's protos cost every web process ~0.5 s of CPU at start.
    from .tensorboard_logs import tensorboard_zip

    scratch = flautim_config().data_path / "tmp"
    return streamed(tensorboard_zip(experiment, attempt, scratch), "application/zip", filename)


# What the page offers -> the file's name after "experimento-<id>-tentativa-<n>-".
EXPORTS = {
    "metrics.csv": "metricas.csv",
    "metrics.json": "metricas.json",
    "tensorboard.zip": "tensorboard.zip",
    "events.jsonl": "eventos.jsonl",
}


def _attempt(raw: str | None, experiment: Experiment) -> int:
    if raw is None:
        return experiment.attempt
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_ID:
        abort(400, _("O parâmetro attempt (tentativa) deve ser um número de 0 a %(max)d.", max=MAX_ID))
    return int(raw)


@bp.get(E + "/<any('metrics.csv', 'metrics.json', 'tensorboard.zip', 'events.jsonl'):what>")
@login_required
def download_export(project_id: int, experiment_id: int, what: str):
    _project, experiment = get_project_object_or_404(project_id, Experiment, experiment_id)
    attempt = _attempt(request.args.get("attempt"), experiment)
    filename = f"experimento-{experiment.id}-tentativa-{attempt}-{EXPORTS[what]}"
    return export_response(experiment, attempt, what, filename)
