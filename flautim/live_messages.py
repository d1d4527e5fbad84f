"""The live updates of an experiment page: one builder per kind of message, and the
headline figures' rules.

The worker's ingest publishes log and event messages, the worker and the queue publish
state messages, and the web's stream builds the same messages from rows when a page
catches up: every path goes through these builders, so the browser
(`flautim/web/static/js/experiment.js`) reads one shape per kind. Messages travel as JSON
on `channel_for(redis_client, experiment_id)` and reach the browser as Server-Sent Events named by their
`kind`.

The server decides the figures a page shows: an event carries its `accuracy` (found by
`accuracy_of`) and a state carries the run's `headline` (current and best accuracy and
loss, kept by the worker with `score`); the page's script draws what it is given.

Imports neither Flask nor SQLAlchemy: the worker uses it.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Literal, Protocol, TypedDict

# The metric names a run may report its accuracy under, in order of preference.
ACCURACY_NAMES = ("accuracy", "acc", "val_accuracy")
# Events that report a loss and metrics (and so an accuracy) for a round.
SCORED_EVENTS = frozenset({"client_train", "client_evaluate", "aggregated", "central_evaluate"})
HEADLINE_KEYS = ("accuracy", "best_accuracy", "loss", "best_loss", "round", "source")


def channel_for(redis_client: Any, experiment_id: int) -> str:
    """The Redis pub/sub channel of an experiment's live updates on `redis_client`'s server.

    Named with the client's database number: keys live in one database but pub/sub channels
    are server-wide, so two sites (or test runs) sharing a server on different databases
    would otherwise see each other's experiment 1."""
    database = int(redis_client.connection_pool.connection_kwargs.get("db") or 0)
    return f"flautim:{database}:experiment:{int(experiment_id)}"


def number_or_none(value: Any) -> float | None:
    """A finite float, or None (a run's output is hostile: NaN, an integer past a float's
    range, text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def int_or_none(value: Any) -> int | None:
    """An int (a float that is a whole number too), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def accuracy_of(metrics: Any) -> float | None:
    """The accuracy among a round's reported metrics: the first of ACCURACY_NAMES present."""
    if not isinstance(metrics, dict):
        return None
    for name in ACCURACY_NAMES:
        if name in metrics:
            return number_or_none(metrics[name])
    return None


def score(headline: dict[str, Any], event: dict[str, Any]) -> None:
    """Update a run's headline (current and best loss and accuracy) with an evaluation
    event (`aggregated` of phase evaluate, or `central_evaluate`): the central evaluation,
    on held-out data, wins over the federated one once the run reports it."""
    central = event.get("type") == "central_evaluate"
    if not central and headline.get("source") == "central":
        return
    headline["source"] = "central" if central else "federated"
    headline["round"] = int_or_none(event.get("round"))
    loss = number_or_none(event.get("loss"))
    accuracy = accuracy_of(event.get("metrics"))
    if loss is not None:
        headline["loss"] = loss
        best = headline.get("best_loss")
        headline["best_loss"] = loss if best is None else min(best, loss)
    if accuracy is not None:
        headline["accuracy"] = accuracy
        best = headline.get("best_accuracy")
        headline["best_accuracy"] = accuracy if best is None else max(best, accuracy)


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
    accuracy: float | None


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
    accuracy = accuracy_of(payload.get("metrics")) if type in SCORED_EVENTS and isinstance(payload, dict) else None
    return {"kind": "event", "id": id, "attempt": attempt, "type": type, "payload": payload, "accuracy": accuracy}


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
