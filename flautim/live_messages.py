"""The live updates of an experiment page: one builder per kind of message, and the
headline figures' rules.

The worker's ingest publishes log and event messages, the worker and the queue publish
state messages, and the web's stream builds the same messages from rows when a page
catches up: every path goes through these builders, so the browser
(`flautim/web/static/js/experiment.js`) reads one shape per kind. Messages travel as JSON
on `channel_for(redis_client, experiment_id)` and reach the browser as Server-Sent Events named by their
`kind`.

The server decides the figures a page shows: a state carries the run's `headline` (its
headline metric's name and direction, as `flautim.headline` decides them, its current and
best value, and the loss's, kept by the worker with `score`); the page's script draws what
it is given.

Imports neither Flask nor SQLAlchemy: the worker uses it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal, Protocol, TypedDict

from flautim.headline import LOSS, Headline, number_or_none  # noqa: F401 (number_or_none: used from here too)

# The run's headline metric (flautim.headline: its name and direction), its current and
# best values, and the same for the loss.
HEADLINE_KEYS = ("metric", "metric_mode", "metric_value", "metric_best", "loss", "best_loss", "round", "source")


def channel_for(redis_client: Any, experiment_id: int) -> str:
    """The Redis pub/sub channel of an experiment's live updates on `redis_client`'s server.

    Named with the client's database number: keys live in one database but pub/sub channels
    are server-wide, so two sites (or test runs) sharing a server on different databases
    would otherwise see each other's experiment 1."""
    database = int(redis_client.connection_pool.connection_kwargs.get("db") or 0)
    return f"flautim:{database}:experiment:{int(experiment_id)}"


def int_or_none(value: Any) -> int | None:
    """An int (a float that is a whole number too), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def score(summary: dict[str, Any], event: dict[str, Any], metric: Headline) -> None:
    """Update a run's headline figures (current and best value of its headline `metric`,
    and of the loss) with an evaluation event (`aggregated` of phase evaluate, or
    `central_evaluate`): the central evaluation, on held-out data, wins over the federated
    one once the run reports it."""
    central = event.get("type") == "central_evaluate"
    if not central and summary.get("source") == "central":
        return
    summary["source"] = "central" if central else "federated"
    summary["round"] = int_or_none(event.get("round"))
    if summary.get("metric") != metric.name or summary.get("metric_mode") != metric.mode:
        # The rule settled on another metric (its first report arrived): start its figures over.
        summary.pop("metric_value", None)
        summary.pop("metric_best", None)
        summary["metric"], summary["metric_mode"] = metric.name, metric.mode
    loss = number_or_none(event.get("loss"))
    metrics = event.get("metrics")
    value = loss if metric.name == LOSS else (
        number_or_none(metrics.get(metric.name)) if isinstance(metrics, dict) else None)
    if loss is not None:
        summary["loss"] = loss
        best = summary.get("best_loss")
        summary["best_loss"] = loss if best is None else min(best, loss)
    if value is not None:
        summary["metric_value"] = value
        if metric.better(value, summary.get("metric_best")):
            summary["metric_best"] = value


class LogMessage(TypedDict):
    kind: Literal["log"]
    id: int
    attempt: int
    source: str
    stream: str
    line: str
    created_at: datetime | str | None


class EventMessage(TypedDict):
    kind: Literal["event"]
    id: int
    attempt: int
    type: str
    payload: Any


class StateMessage(TypedDict):
    kind: Literal["state"]
    id: int
    state: str
    attempt: int
    rounds_done: int | None
    rounds_total: int | None
    failure_kind: str | None
    failure_reason: str | None
    cancel_requested: bool
    started_at: str | None
    finished_at: str | None
    headline: dict[str, Any]


class ExperimentLike(Protocol):
    """What `state_message` reads of an experiment (flautim.models.Experiment)."""

    id: int
    state: Any
    attempt: int
    rounds_done: int | None
    rounds_total: int | None
    failure_kind: Any
    failure_reason: str | None
    cancel_requested: bool
    started_at: datetime | None
    finished_at: datetime | None
    summary: dict[str, Any] | None


def log_message(id: int, attempt: int, source: str, stream: str, line: str,
                created_at: datetime | str | None = None) -> LogMessage:
    return {"kind": "log", "id": id, "attempt": attempt, "source": source, "stream": stream, "line": line,
            "created_at": created_at}


def event_message(id: int, attempt: int, type: str, payload: Any) -> EventMessage:
    return {"kind": "event", "id": id, "attempt": attempt, "type": type, "payload": payload}


def state_message(experiment: ExperimentLike) -> StateMessage:
    summary = experiment.summary or {}
    return {
        "kind": "state",
        "id": experiment.id,
        "state": str(experiment.state),
        "attempt": experiment.attempt,
        "rounds_done": experiment.rounds_done,
        "rounds_total": experiment.rounds_total,
        "failure_kind": str(experiment.failure_kind) if experiment.failure_kind else None,
        "failure_reason": experiment.failure_reason,
        "cancel_requested": bool(experiment.cancel_requested),
        "started_at": experiment.started_at.isoformat() if experiment.started_at else None,
        "finished_at": experiment.finished_at.isoformat() if experiment.finished_at else None,
        "headline": {key: summary[key] for key in HEADLINE_KEYS if key in summary},
    }


def encode(message: LogMessage | EventMessage | StateMessage) -> str:
    """A message as the channel carries it: datetimes in ISO 8601 as the catch-up sends
    them, and anything else JSON cannot say (a run's payload may hold it) as its text."""
    return json.dumps(message, default=_plain)


def _plain(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
