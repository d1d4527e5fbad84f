"""The Logs tab's lines of one source, fetched by the page's script (static/js/experiment.js)
when the viewer picks a source: the newest lines of that source in the whole log, not only
among those the page already holds. Behind the page's login, like the page's other JSON;
the API's /logs pages forward through the same rows for token holders."""

from __future__ import annotations

from flask import g, request
from flask_babel import format_decimal
from flask_babel import gettext as _

from flautim.live_messages import log_message
from flautim.models import Experiment, Role
from flautim.web.projects.access import project_object_or_404, require_role

from . import bp, log_picker
from .results import experiment_logs, log_sources

E = "/<int:project_id>/experiments/<int:experiment_id>"
# As many as the live stream's catch-up sends (live.CATCH_UP_LOG_LINES): older lines of a
# source are in the download.
TAIL_LINES = 2000


@bp.get(E + "/logs.json")
@require_role(Role.VIEWER)
def log_lines(project_id: int, experiment_id: int):
    """The last TAIL_LINES lines of the current attempt, oldest first, of one choice:
    `source` (a source's name), `client` (a client's number) or `clients=all`; none: every
    line. `has_more` says that older ones were left out."""
    experiment = project_object_or_404(Experiment, experiment_id, g.project)
    sources = set(log_sources(experiment))
    try:
        where = log_picker.chosen_lines(sources, source=request.args.get("source"),
                                        client=request.args.get("client"),
                                        all_clients=request.args.get("clients") == "all")
    except log_picker.BadLogSource as exc:
        return {"error": _bad_source_message(exc, log_picker.summarize(sources)), "field": exc.reason}, 400
    rows = experiment_logs(experiment, limit=TAIL_LINES + 1, tail=True, where=where)
    return {"items": [log_message(*row) for row in rows[-TAIL_LINES:]], "has_more": len(rows) > TAIL_LINES}


def _bad_source_message(exc: log_picker.BadLogSource, summary: log_picker.SourceSummary) -> str:
    if exc.reason == "unknown_source":
        return _("Esta execução não tem linhas da origem «%(source)s».", source=exc.value[:40])
    if summary.clients == 0:
        return _("Esta execução ainda não tem linhas de nenhum cliente.")
    clients = _("%(n)s clientes, de %(first)d a %(last)d", n=format_decimal(summary.clients),
                first=summary.first, last=summary.last)
    if exc.reason == "not_a_number":
        return _("«%(value)s» não é o número de um cliente. Digite um número inteiro (esta execução tem %(clients)s).",
                 value=exc.value[:40], clients=clients)
    return _("Esta execução não tem linhas do cliente %(number)s (ela tem %(clients)s).",
             number=exc.value, clients=clients)
