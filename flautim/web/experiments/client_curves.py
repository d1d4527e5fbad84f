"""Curves per client, on demand: the spread of one metric across the clients per round
(min, median, max) and the curves of a few chosen clients.

Read from the metric rows the worker stores for each client's `client_train` /
`client_evaluate` (source `client-<id>`), computed by the database and bounded whatever
the run: at most `max_points` rounds (the last round of each bucket of rounds, and the run's
last round) and MAX_CLIENTS chosen clients, so a run of 1,000 clients and 10,000 rounds
answers with a few hundred numbers.
"""

from __future__ import annotations

import math
import re
from typing import Any

from sqlalchemy import and_, case, func, or_, select

from flautim.models import Experiment, MetricRow, db

PHASES = ("train", "evaluate")
MAX_CLIENTS = 8
MAX_CLIENT_ID = 999_999
MAX_NAME_LENGTH = 64
# "0,3,7": up to MAX_CLIENTS client ids (the API's query model says the same).
CLIENTS_PATTERN = rf"^\d{{1,6}}(,\d{{1,6}}){{0,{MAX_CLIENTS - 1}}}$"


class BadClientQuery(ValueError):
    """A parameter of the request is not acceptable: `field` says which."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def parse_clients(text: str | None) -> list[int]:
    """The client ids of "0,3,7" (none for an empty value); BadClientQuery otherwise."""
    if text is None or text == "":
        return []
    if not re.fullmatch(CLIENTS_PATTERN, text):
        raise BadClientQuery("clients", f"at most {MAX_CLIENTS} client numbers separated by commas, e.g. 0,3,7")
    return list(dict.fromkeys(int(part) for part in text.split(",")))


def check_query(name: str | None, phase: str | None) -> tuple[str, str]:
    """The metric name and phase of a request, checked: BadClientQuery names what is wrong."""
    name = "loss" if name is None or name == "" else name
    phase = "evaluate" if phase is None or phase == "" else phase
    if len(name) > MAX_NAME_LENGTH:
        raise BadClientQuery("name", f"a metric name has at most {MAX_NAME_LENGTH} characters")
    if phase not in PHASES:
        raise BadClientQuery("phase", "train or evaluate")
    return name, phase


def client_curves(experiment: Experiment, attempt: int, *, name: str, phase: str, clients: list[int],
                  max_points: int) -> dict[str, Any]:
    """{"spread": [{"round", "min", "median", "max", "clients"}], "clients": [{"client",
    "rounds", "values"}], "downsampled", ...} of one metric in one phase of an attempt."""
    of_clients = and_(
        MetricRow.experiment_id == experiment.id, MetricRow.attempt == attempt, MetricRow.phase == phase,
        MetricRow.name == name, MetricRow.source.like("client-%"),
    )
    first, last = db.session.execute(
        select(func.min(MetricRow.round), func.max(MetricRow.round)).where(of_clients)
    ).one()
    body: dict[str, Any] = {"experiment_id": experiment.id, "attempt": attempt, "name": name, "phase": phase,
                            "max_points": max_points, "downsampled": False, "spread": [], "clients": []}
    if first is None:
        return body
    width = max(1, math.ceil((last - first + 1) / max_points))
    # The last round of each bucket of `width` rounds, and the run's last round.
    kept = (MetricRow.round.is_not(None) if width == 1
            else or_((MetricRow.round - first) % width == width - 1, MetricRow.round == last))
    body["downsampled"] = width > 1
    ranked = (
        select(MetricRow.round, MetricRow.value,
               func.row_number().over(partition_by=MetricRow.round, order_by=MetricRow.value).label("rank"),
               func.count().over(partition_by=MetricRow.round).label("n"))
        .where(of_clients, kept)
        .subquery()
    )
    # The median: the middle value, or the mean of the two middle ones (integer division).
    middle = or_(ranked.c.rank == (ranked.c.n + 1) // 2, ranked.c.rank == (ranked.c.n + 2) // 2)
    spread = db.session.execute(
        select(ranked.c.round, func.min(ranked.c.value), func.avg(case((middle, ranked.c.value))),
               func.max(ranked.c.value), func.max(ranked.c.n))
        .group_by(ranked.c.round)
        .order_by(ranked.c.round)
    ).all()
    body["spread"] = [{"round": rnd, "min": low, "median": float(median), "max": high, "clients": n}
                      for rnd, low, median, high, n in spread]
    if clients:
        sources = [f"client-{client}" for client in clients]
        rows = db.session.execute(
            select(MetricRow.source, MetricRow.round, MetricRow.value)
            .where(of_clients, kept, MetricRow.source.in_(sources))
            .order_by(MetricRow.round, MetricRow.id)
        ).all()
        curves: dict[str, dict[int, float]] = {source: {} for source in sources}
        for source, rnd, value in rows:
            curves[source][rnd] = value  # a round reported twice: its newest value
        body["clients"] = [{"client": client, "rounds": list(curves[source]), "values": list(curves[source].values())}
                           for client, source in zip(clients, sources, strict=True)]
    return body
