"""What each client reported, through the API: the spread across clients per round, one
round's per-client table (sorted, paged) and the partition's label mix by client. Bounded
answers at any number of clients (experiments/client_results.py)."""

from __future__ import annotations

from flautim.web.experiments import client_results

from . import bp
from . import schemas as s
from .experiment_routes import READ_ERRORS, E
from .operations import answer, operation, query_args
from .scoping import scoped_experiment


@bp.get(E + "/clients/summary")
@operation("Distribuição das losses e dos exemplos dos clientes por rodada", "results",
           query=s.ClientSummaryQuery, responses={200: s.ClientSummary}, errors=READ_ERRORS)
def client_summary(project_id: int, experiment_id: int):
    """Per round, min / quartiles / max of the clients' losses and example counts (and the
    total of examples), for the newest `limit` rounds at or below `round_max`; pass
    `next_round_max` back as `round_max` for older rounds while `has_more`."""
    _project, experiment = scoped_experiment(project_id, experiment_id)
    args = query_args()
    return answer(s.ClientSummary.model_validate(client_results.round_summaries(
        experiment, args.attempt, phase=args.phase, round_max=args.round_max, limit=args.limit)))


@bp.get(E + "/clients")
@operation("Clientes de uma rodada (ordenados, em páginas)", "results", query=s.ClientTableQuery,
           responses={200: s.ClientTable}, errors=READ_ERRORS)
def client_table(project_id: int, experiment_id: int):
    """One row per client of a round (the newest by default): examples, training and
    evaluation loss and `metric` (by default the accuracy), training time. `sort` by any column (missing values
    last), `limit`/`offset` pages; `total` is the round's number of clients."""
    _project, experiment = scoped_experiment(project_id, experiment_id)
    args = query_args()
    return answer(s.ClientTable.model_validate(client_results.client_table(
        experiment, args.attempt, round=args.round, sort=args.sort, order=args.order, limit=args.limit,
        offset=args.offset, metric=args.metric)))


@bp.get(E + "/clients/label-mix")
@operation("Mistura de rótulos por cliente (a partição)", "results", query=s.LabelMixQuery,
           responses={200: s.LabelMix}, errors=READ_ERRORS)
def label_mix(project_id: int, experiment_id: int):
    """Training examples per label for each client, as a stacked-bar chart needs them: at
    most `bars` clients (beyond, a sample at equal steps of client id) and `labels` labels
    of their own (the rest in `other`)."""
    _project, experiment = scoped_experiment(project_id, experiment_id)
    args = query_args()
    return answer(s.LabelMix.model_validate(client_results.label_mix(
        experiment, args.attempt, bars=args.bars, labels=args.labels)))
