"""What each client reported, at any number of clients: the spread of client losses and
example counts per round, one round's per-client table (sorted and paged), and the label
mix of the partition by client.

Built for 1,000 clients and more: the spread and the table are computed by the database
from `ClientResult` rows (one per client, round and phase; indexed by round), each answer
is bounded (rounds per page, clients per page, bars per chart) whatever the run sent, and
nothing here reads every event of a run. Quartiles are interpolated between ranks as
PostgreSQL's percentile_cont and numpy's default do, with window functions that SQLite
(the demo's database) runs as well.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import String, and_, case, cast, func, literal, select, text

from flautim.live_messages import int_or_none
from flautim.models import ClientResult, Experiment, ExperimentEvent, MetricRow, db
from flautim.models.experiments import CLIENT_REPORT_TYPES, PAGE_EVENTS_WHERE

PHASES = ("train", "evaluate")
SORTS = ("client", "examples", "train_loss", "evaluate_loss", "train_metric", "evaluate_metric")
ORDERS = ("asc", "desc")
# Bounds of one answer, whatever the run reported or the request asks.
MAX_SUMMARY_ROUNDS = 200
DEFAULT_SUMMARY_ROUNDS = 50
MAX_CLIENTS_PER_PAGE = 200
DEFAULT_CLIENTS_PER_PAGE = 50
MAX_OFFSET = 1_000_000
MAX_BARS = 200
DEFAULT_BARS = 100
MAX_LABELS = 30
DEFAULT_LABELS = 10
# A partition's entries read at most (the event is at most 1 MB anyway).
MAX_PARTITION_CLIENTS = 100_000
# Rounds are stored as 32-bit integers (the ingest keeps rounds up to a million).
MAX_ROUND = 2**31 - 1
QUARTILES = (1, 2, 3)  # k / 4
INTEGER = re.compile(r"-?[0-9]{1,18}")

CR = ClientResult


def _attempt(experiment: Experiment, attempt: int | None) -> int:
    return experiment.attempt if attempt is None else attempt


def _clamp(value: int | None, default: int, low: int, high: int) -> int:
    return default if value is None else max(low, min(high, value))


# --- spread across clients, per round -------------------------------------------------------

def _newest_rounds(where: tuple, round_max: int | None, limit: int) -> list[int]:
    """Up to `limit` rounds with results, newest first, at or below `round_max`: one index
    probe per round (a recursive skip scan), never a pass over every client's row."""
    first = select(func.max(CR.round).label("round"), literal(1).label("n")).where(*where)
    if round_max is not None:
        first = first.where(CR.round <= round_max)
    found = first.cte("rounds", recursive=True)
    below = select(func.max(CR.round)).where(*where, CR.round < found.c.round).scalar_subquery()
    found = found.union_all(select(below, found.c.n + 1).where(found.c.round.is_not(None), found.c.n < limit))
    return [r for r in db.session.scalars(select(found.c.round).where(found.c.round.is_not(None))) if r is not None]


def _quartile(n: int, k: int, at: float | None, after: float | None) -> float | None:
    """The k-th quartile of n sorted values from the two ranks around it (linear
    interpolation; written so that two finite values never overflow)."""
    if not n or at is None:
        return None
    frac = ((n - 1) * k % 4) / 4
    if frac == 0 or after is None:
        return float(at)
    return float(at) * (1 - frac) + float(after) * frac


def _spread_columns(ranked, column: str):
    """min, max, count and the two ranks around each quartile of one ranked column."""
    value, rank, n = ranked.c[column], ranked.c[f"{column}_rank"], ranked.c[f"{column}_n"]
    cols = [func.count(value), func.min(value), func.max(value)]
    for k in QUARTILES:
        at = (n - 1) * k // 4 + 1
        cols.append(func.max(case((rank == at, value))))
        cols.append(func.max(case((rank == at + 1, value))))
    return cols


def _spread(values: list, total: int | None = None) -> dict[str, Any]:
    n, low, high, *ranks = values
    quartiles = [_quartile(n, k, ranks[2 * i], ranks[2 * i + 1]) for i, k in enumerate(QUARTILES)]
    body = {"count": int(n), "min": _plain(low), "q1": quartiles[0], "median": quartiles[1],
            "q3": quartiles[2], "max": _plain(high)}
    if total is not None:
        body["total"] = int(total)
    return body


def _plain(value):
    return None if value is None else float(value)


def round_summaries(experiment: Experiment, attempt: int | None = None, *, phase: str = "train",
                    round_max: int | None = None, limit: int | None = None) -> dict[str, Any]:
    """The distribution of client losses and example counts of the newest `limit` rounds
    at or below `round_max` (oldest first): per round the clients that reported, and
    min / quartiles / max of their losses and of their example counts (with the total).
    Pass `next_round_max` back as `round_max` for older rounds (`has_more`)."""
    attempt = _attempt(experiment, attempt)
    phase = phase if phase in PHASES else "train"
    limit = _clamp(limit, DEFAULT_SUMMARY_ROUNDS, 1, MAX_SUMMARY_ROUNDS)
    round_max = None if round_max is None else _clamp(round_max, 0, -1, MAX_ROUND)
    where = (CR.experiment_id == experiment.id, CR.attempt == attempt, CR.phase == phase)
    rounds = _newest_rounds(where, round_max, limit + 1)
    page = sorted(rounds[:limit])
    body: dict[str, Any] = {"experiment_id": experiment.id, "attempt": attempt, "phase": phase, "rounds": [],
                            "has_more": len(rounds) > limit,
                            "next_round_max": page[0] - 1 if page else (round_max if round_max is not None else -1)}
    if not page:
        return body
    ranked = select(
        CR.round, CR.client, CR.loss, CR.examples,
        func.row_number().over(partition_by=CR.round, order_by=CR.loss.asc().nulls_last()).label("loss_rank"),
        func.count(CR.loss).over(partition_by=CR.round).label("loss_n"),
        func.row_number().over(partition_by=CR.round, order_by=CR.examples.asc().nulls_last()).label("examples_rank"),
        func.count(CR.examples).over(partition_by=CR.round).label("examples_n"),
    ).where(*where, CR.round.in_(page)).subquery()
    loss_cols, examples_cols = _spread_columns(ranked, "loss"), _spread_columns(ranked, "examples")
    rows = db.session.execute(
        select(ranked.c.round, func.count(func.distinct(ranked.c.client)), func.sum(ranked.c.examples),
               *loss_cols, *examples_cols)
        .group_by(ranked.c.round).order_by(ranked.c.round)
    ).all()
    width = len(loss_cols)
    for rnd, clients, total, *rest in rows:
        body["rounds"].append({
            "round": rnd, "clients": clients,
            "loss": _spread(rest[:width]),
            "examples": _spread(rest[width:], total or 0),
        })
    return body


# --- one round's per-client table ------------------------------------------------------------

def _by_phase(column, phase: str):
    return func.max(case((CR.phase == phase, column)))


def _metric_of_clients(experiment_id: int, attempt: int, rnd: int, name: str):
    """The round's values of metric `name` per client and phase, from the metric rows."""
    return (
        select(MetricRow.source, MetricRow.phase, func.max(MetricRow.value).label("value"))
        .where(MetricRow.experiment_id == experiment_id, MetricRow.attempt == attempt, MetricRow.round == rnd,
               MetricRow.name == name, MetricRow.phase.in_(PHASES), MetricRow.source.like("client-%"))
        .group_by(MetricRow.source, MetricRow.phase)
        .subquery()
    )


def client_table(experiment: Experiment, attempt: int | None = None, *, round: int | None = None,
                 sort: str = "client", order: str = "asc", limit: int | None = None,
                 offset: int | None = None, metric: str | None = None) -> dict[str, Any]:
    """One round's clients (the newest round with results unless `round` is given), one
    row each with its examples, training and evaluation loss and metric and training
    time; sorted by `sort` (missing values last, then by client) and paged by
    `limit`/`offset`, with the round's `total` of clients. The metric is `metric` as the
    clients reported it (a regression run's "mae"), by default their accuracy."""
    attempt = _attempt(experiment, attempt)
    metric = metric[:64] if metric else None
    sort = sort if sort in SORTS else "client"
    order = order if order in ORDERS else "asc"
    limit = _clamp(limit, DEFAULT_CLIENTS_PER_PAGE, 1, MAX_CLIENTS_PER_PAGE)
    offset = _clamp(offset, 0, 0, MAX_OFFSET)
    round = None if round is None else _clamp(round, 0, -1, MAX_ROUND)
    same_attempt = (CR.experiment_id == experiment.id, CR.attempt == attempt)
    last_round = db.session.scalar(select(func.max(CR.round)).where(*same_attempt))
    body: dict[str, Any] = {"experiment_id": experiment.id, "attempt": attempt,
                            "round": round if round is not None else last_round, "last_round": last_round,
                            "metric": metric or "accuracy", "total": 0, "limit": limit, "offset": offset,
                            "sort": sort, "order": order, "items": []}
    if body["round"] is None:
        return body
    rows_of_round = select().where(*same_attempt, CR.round == body["round"])
    value = CR.accuracy
    if metric:
        reported = _metric_of_clients(experiment.id, attempt, body["round"], metric)
        value = reported.c.value
        rows_of_round = rows_of_round.select_from(CR).outerjoin(
            reported, and_(reported.c.source == literal("client-") + cast(CR.client, String),
                           reported.c.phase == CR.phase))
    pivot = (
        rows_of_round.add_columns(
            CR.client.label("client"),
            func.coalesce(_by_phase(CR.examples, "train"), _by_phase(CR.examples, "evaluate")).label("examples"),
            _by_phase(CR.loss, "train").label("train_loss"),
            _by_phase(value, "train").label("train_metric"),
            _by_phase(CR.loss, "evaluate").label("evaluate_loss"),
            _by_phase(value, "evaluate").label("evaluate_metric"),
            _by_phase(CR.duration_s, "train").label("duration_s"),
        )
        .group_by(CR.client)
        .subquery()
    )
    key = pivot.c[sort]
    key = key.desc() if order == "desc" else key.asc()
    tiebreak = pivot.c.client.desc() if order == "desc" else pivot.c.client.asc()
    rows = db.session.execute(
        select(*pivot.c, func.count().over().label("total"))
        .order_by(key.nulls_last(), tiebreak).limit(limit).offset(offset)
    ).mappings().all()
    if rows:
        body["total"] = rows[0]["total"]
    elif offset:
        body["total"] = db.session.scalar(select(func.count()).select_from(pivot))
    body["items"] = [{k: row[k] for k in CLIENT_ROW_KEYS} for row in rows]
    return body


CLIENT_ROW_KEYS = ("client", "examples", "train_loss", "train_metric", "evaluate_loss", "evaluate_metric",
                   "duration_s")


# --- the partition's label mix by client -----------------------------------------------------

def partition_payload(experiment: Experiment, attempt: int | None = None) -> dict | None:
    """The attempt's partition_summary event (the first: prepare sends one)."""
    payload = db.session.scalar(
        select(ExperimentEvent.payload)
        .where(ExperimentEvent.experiment_id == experiment.id,
               ExperimentEvent.attempt == _attempt(experiment, attempt),
               ExperimentEvent.type == "partition_summary")
        .order_by(ExperimentEvent.id)
        .limit(1)
    )
    return payload if isinstance(payload, dict) else None


def _count(value: Any) -> int:
    n = int_or_none(value)
    return n if n is not None and n > 0 else 0


def _partition_clients(payload: dict) -> list[dict[str, Any]]:
    """The partition's clients that are well formed (hostile input: the run wrote it), in
    client order, each {client, train_examples, val_examples, label_counts}."""
    entries = payload.get("clients")
    clients = []
    for entry in entries[:MAX_PARTITION_CLIENTS] if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or int_or_none(entry.get("client")) is None:
            continue
        counts = entry.get("label_counts")
        counts = {str(k)[:64]: _count(v) for k, v in counts.items()} if isinstance(counts, dict) else {}
        clients.append({"client": int_or_none(entry["client"]), "train_examples": _count(entry.get("train_examples")),
                        "val_examples": _count(entry.get("val_examples")), "label_counts": counts})
    clients.sort(key=lambda c: c["client"])
    return clients


def _label_key(label: str):
    """Numeric labels in numeric order ("2" before "10"), then the others."""
    return (0, int(label), "") if INTEGER.fullmatch(label) else (1, 0, label)


def _evenly(items: list, count: int) -> list:
    """`count` items spread evenly over `items`, the first and the last included."""
    if len(items) <= count:
        return items
    if count == 1:
        return items[:1]
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def label_mix(experiment: Experiment, attempt: int | None = None, *, bars: int | None = None,
              labels: int | None = None) -> dict[str, Any]:
    """The partition's label mix by client, as a stacked-bar chart needs it: one bar per
    client up to `bars` clients; beyond, `bars` clients sampled at equal steps of client
    id (a sample keeps each client's own mix, where summing groups of clients would hide
    the skew the chart is for). The `labels` most frequent labels have their own part of
    each bar, the rest is `other`. Counted over every client: how many hold a single label."""
    attempt = _attempt(experiment, attempt)
    bars = _clamp(bars, DEFAULT_BARS, 1, MAX_BARS)
    labels = _clamp(labels, DEFAULT_LABELS, 1, MAX_LABELS)
    payload = partition_payload(experiment, attempt) or {}
    clients = _partition_clients(payload)
    totals: dict[str, int] = {}
    single = 0
    for c in clients:
        held = 0
        for label, n in c["label_counts"].items():
            if n:
                totals[label] = totals.get(label, 0) + n
                held += 1
        single += held == 1
    top = sorted(totals, key=lambda k: (-totals[k], _label_key(k)))[:labels]
    shown = sorted(top, key=_label_key)
    method = payload.get("method")
    return {
        "experiment_id": experiment.id,
        "attempt": attempt,
        "method": str(method)[:64] if method is not None else None,
        "clients_total": len(clients),
        "sampled": len(clients) > bars,
        "labels": shown,
        "other_labels": max(0, len(totals) - len(shown)),
        "single_label_clients": single,
        "bars": [
            {"client": c["client"], "train_examples": c["train_examples"], "val_examples": c["val_examples"],
             "counts": [c["label_counts"].get(label, 0) for label in shown],
             "other": sum(n for label, n in c["label_counts"].items() if label not in top)}
            for c in _evenly(clients, bars)
        ],
    }


# --- what the live page is sent of the clients ---------------------------------------------

# One event per client and round: 2,000 a round at 1,000 clients. The page is not sent
# them; it asks for the table and the spread (above) when a round's aggregate arrives.
CLIENT_EVENT_TYPES = CLIENT_REPORT_TYPES


def page_events():
    """The condition on experiment_events of what the live page is sent, written as the
    partial index ix_experiment_events_page says it (literals, so the planner uses it)."""
    return text(PAGE_EVENTS_WHERE)
PAGE_PARTITION_WARNINGS = 20


def for_page(message: dict[str, Any]) -> dict[str, Any] | None:
    """An event message as the live page gets it: None for a client's report, the
    partition summary without its per-client list (the page fetches the label mix) and
    with its first warnings only; any other event as it is."""
    kind = message.get("type")
    if kind in CLIENT_EVENT_TYPES:
        return None
    payload = message.get("payload")
    if kind != "partition_summary" or not isinstance(payload, dict):
        return message
    slim = {k: v for k, v in payload.items() if k not in ("clients", "warnings")}
    clients, warnings = payload.get("clients"), payload.get("warnings")
    slim["clients_total"] = len(clients) if isinstance(clients, list) else 0
    if isinstance(warnings, list):
        slim["warnings"] = warnings[:PAGE_PARTITION_WARNINGS]
        slim["warnings_total"] = len(warnings)
    return {**message, "payload": slim}
