"""Live updates of an experiment as Server-Sent Events, fed by Redis pub/sub.

The worker stores each row (LogRecord, ExperimentEvent) and then publishes it on
`flautim:experiment:<id>` as `{"kind": "log"|"event"|"state", "id": <row id>, ...}`.
Logs and events are two tables with two id sequences, so the SSE `id:` is the pair
"<last log id>-<last event id>": a reconnect (Last-Event-ID) resumes both without gaps.

No gaps, no duplicates: the stream subscribes to the channel *before* it catches up from the
database, then follows the channel and drops any row whose id it has already sent.
No idle DB connection: the database is used only during catch-up and for the periodic
access re-check (each inside its own app context, which returns the connection to the
pool); following needs only Redis. A stream ends after `max_seconds` (the browser
reconnects on its own), so a threaded server or gunicorn's gthread workers never have a
thread parked forever.

Bounded per user: each open stream holds a slot (`StreamSlots`, in Redis, so every web
process counts the same streams), and re-checks every few seconds that its viewer is
still a member of the project: a removed member's stream ends with `end {"revoked": true}`.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from flask import Flask

from flautim.models import Experiment, ExperimentEvent, LogRecord, Membership, User, db

from . import services

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "flautim:experiment:"
PING_EVERY_S = 15.0
# On first open the page gets the tail of the log; older lines are in the download.
CATCH_UP_LOG_LINES = 2000
BATCH = 1000


def channel_for(experiment_id: int) -> str:
    return f"{CHANNEL_PREFIX}{int(experiment_id)}"


class StreamSlots:
    """The live streams one user holds open, counted in Redis across every web process: a
    sorted set of stream tokens scored by when each one's lease ends. A stream renews its
    lease as it re-checks access and gives its slot back when it closes; one whose process
    died drops out when its lease ends."""

    KEY_PREFIX = "flautim:streams:user:"

    def __init__(self, redis_client, user_id: int, limit: int, lease_s: float) -> None:
        self.redis = redis_client
        self.key = f"{self.KEY_PREFIX}{int(user_id)}"
        self.limit = limit
        self.lease_s = lease_s

    def acquire(self) -> str | None:
        """A token for a new stream, or None when the user already holds `limit`. Two
        racing for the last slot may both be refused, never both admitted."""
        now = time.time()
        token = secrets.token_hex(8)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zremrangebyscore(self.key, "-inf", now)
        pipe.zadd(self.key, {token: now + self.lease_s})
        pipe.zcard(self.key)
        pipe.expire(self.key, int(self.lease_s) + 1)
        count = pipe.execute()[2]
        if count > self.limit:
            self.redis.zrem(self.key, token)
            return None
        return token

    def renew(self, token: str) -> None:
        self.redis.zadd(self.key, {token: time.time() + self.lease_s}, xx=True)
        self.redis.expire(self.key, int(self.lease_s) + 1)

    def release(self, token: str) -> None:
        self.redis.zrem(self.key, token)


ACCESS_QUERY = (
    db.select(Membership.id)
    .join(User, User.id == Membership.user_id)
    .join(Experiment, Experiment.project_id == Membership.project_id)
    .where(
        Membership.user_id == db.bindparam("user_id"),
        Membership.project_id == db.bindparam("project_id"),
        Experiment.id == db.bindparam("experiment_id"),
        User.active.is_(True),
    )
    .limit(1)
)


def viewer_may_watch(app: Flask, user_id: int, project_id: int, experiment_id: int) -> bool:
    """Whether the user is still an active member of the experiment's project (any role
    may watch). A database error counts as no: the browser reconnects, and the page's own
    access check answers then."""
    with app.app_context():
        try:
            return db.session.execute(
                ACCESS_QUERY, {"user_id": user_id, "project_id": project_id, "experiment_id": experiment_id}
            ).first() is not None
        except Exception:
            log.exception("stream access re-check failed (user %s, experiment %s)", user_id, experiment_id)
            return False
        finally:
            db.session.remove()


@dataclass
class Cursor:
    log_id: int = 0
    event_id: int = 0
    resumed: bool = False

    @classmethod
    def parse(cls, raw: str | None) -> Cursor:
        """From a Last-Event-ID header ("L-E"); anything else starts from the beginning."""
        if raw:
            left, _, right = raw.strip().partition("-")
            if left.isdigit() and right.isdigit():
                return cls(int(left), int(right), resumed=True)
        return cls()

    def __str__(self) -> str:
        return f"{self.log_id}-{self.event_id}"


EVENT_COLUMNS = (ExperimentEvent.id, ExperimentEvent.attempt, ExperimentEvent.type, ExperimentEvent.payload)


def serialize_state(experiment: Experiment) -> dict[str, Any]:
    return {
        "kind": "state",
        "state": experiment.state.value,
        "attempt": experiment.attempt,
        "rounds_done": experiment.rounds_done,
        "rounds_total": experiment.rounds_total,
        "failure_kind": experiment.failure_kind.value if experiment.failure_kind else None,
        "failure_reason": experiment.failure_reason,
        "cancel_requested": experiment.cancel_requested,
        "started_at": experiment.started_at.isoformat() if experiment.started_at else None,
        "finished_at": experiment.finished_at.isoformat() if experiment.finished_at else None,
    }


def normalise_event_message(message: dict[str, Any]) -> dict[str, Any]:
    """An event message from the channel in the shape the catch-up sends (the
    publisher may flatten the payload into the message)."""
    if isinstance(message.get("payload"), dict):
        return message
    payload = {k: v for k, v in message.items() if k not in ("kind", "id", "attempt", "experiment_id")}
    return {
        "kind": "event",
        "id": message["id"],
        "attempt": message.get("attempt"),
        "type": message.get("type"),
        "payload": payload,
    }


def sse(kind: str, data: dict[str, Any], cursor: Cursor | None = None) -> str:
    lines = []
    if cursor is not None:
        lines.append(f"id: {cursor}")
    lines.append(f"event: {kind}")
    lines.append("data: " + _json(data))
    return "\n".join(lines) + "\n\n"


def _json(data: dict[str, Any]) -> str:
    """orjson (datetimes as isoformat() gives them, non-finite floats as null, which
    JSON.parse reads); the standard library for what orjson refuses: a run's events are
    hostile and may hold an integer past 64 bits."""
    try:
        return orjson.dumps(data, default=str).decode()
    except orjson.JSONEncodeError:
        return json.dumps(data, separators=(",", ":"), default=_plain)


def _plain(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _catch_up(app: Flask, experiment_id: int, cursor: Cursor) -> tuple[str, dict[str, Any]]:
    """Rows after the cursor (the current attempt's), then the state, as one piece of SSE
    text: thousands of small writes cost the server more than building them. Runs in its
    own app context so the DB connection goes back to the pool before the stream idles.
    Rows are read as columns, not ORM objects: a page open reads up to 2,000 lines."""
    out: list[str] = []
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        attempt = experiment.attempt
        if not cursor.resumed:
            # First open: only the tail, then everything newer. Found before the events
            # are sent, so their ids carry it: a reconnect in the middle of the catch-up
            # resumes at the tail, not at the log's first line.
            first_of_tail = db.session.scalar(
                db.select(LogRecord.id)
                .where(LogRecord.experiment_id == experiment_id, LogRecord.attempt == attempt)
                .order_by(LogRecord.id.desc())
                .offset(CATCH_UP_LOG_LINES - 1)
                .limit(1)
            )
            if first_of_tail is not None:
                cursor.log_id = first_of_tail - 1
        while True:
            events = db.session.execute(
                db.select(*EVENT_COLUMNS)
                .where(
                    ExperimentEvent.experiment_id == experiment_id,
                    ExperimentEvent.attempt == attempt,
                    ExperimentEvent.id > cursor.event_id,
                )
                .order_by(ExperimentEvent.id)
                .limit(BATCH)
            ).all()
            for id_, row_attempt, type_, payload in events:
                cursor.event_id = id_
                out.append(sse("event", {"kind": "event", "id": id_, "attempt": row_attempt, "type": type_,
                                         "payload": payload}, cursor))
            if len(events) < BATCH:
                break
        while True:
            rows = services.experiment_logs(experiment, attempt=attempt, after_id=cursor.log_id, limit=BATCH)
            for id_, row_attempt, source, stream, line, created_at in rows:
                cursor.log_id = id_
                out.append(sse("log", {"kind": "log", "id": id_, "attempt": row_attempt, "source": source,
                                       "stream": stream, "line": line, "created_at": created_at}, cursor))
            if len(rows) < BATCH:
                break
        state = serialize_state(experiment)
        out.append(sse("state", state, cursor))
        db.session.remove()
    return "".join(out), state


def stream(
    app: Flask,
    redis_client,
    experiment_id: int,
    cursor: Cursor,
    max_seconds: float = 300.0,
    poll_s: float = 0.5,
    still_allowed: Callable[[], bool] | None = None,
    recheck_s: float = 5.0,
) -> Iterator[str]:
    """The SSE body for one browser connection. `still_allowed` is asked every `recheck_s`
    seconds; once it says no, the stream ends with `end {"revoked": true}`."""
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(channel_for(experiment_id))
        # Tell the browser to reconnect after 1 s, and flush proxies at once.
        yield "retry: 1000\n: open\n\n"
        caught_up, state = _catch_up(app, experiment_id, cursor)
        yield caught_up
        attempt = state["attempt"]
        if state["state"] in ("succeeded", "failed", "cancelled", "timed_out", "draft"):
            yield sse("end", {"state": state["state"]}, cursor)
            return
        started = last_write = last_check = time.monotonic()
        while time.monotonic() - started < max_seconds:
            message = pubsub.get_message(timeout=min(poll_s, recheck_s))
            now = time.monotonic()
            if still_allowed is not None and now - last_check >= recheck_s:
                last_check = now
                if not still_allowed():
                    yield sse("end", {"revoked": True}, cursor)
                    return
            if message is None:
                if now - last_write >= PING_EVERY_S:
                    last_write = now
                    yield ": ping\n\n"
                continue
            try:
                data = json.loads(message["data"])
            except (TypeError, ValueError):
                continue
            if not isinstance(data, dict):
                continue
            kind = data.get("kind")
            row_attempt = data.get("attempt")
            if kind == "log":
                if not isinstance(data.get("id"), int) or data["id"] <= cursor.log_id:
                    continue
                if row_attempt not in (None, attempt):
                    continue
                cursor.log_id = data["id"]
                last_write = now
                yield sse("log", data, cursor)
            elif kind == "event":
                if not isinstance(data.get("id"), int) or data["id"] <= cursor.event_id:
                    continue
                if row_attempt not in (None, attempt):
                    continue
                cursor.event_id = data["id"]
                last_write = now
                yield sse("event", normalise_event_message(data), cursor)
            elif kind == "state":
                last_write = now
                yield sse("state", data, cursor)
                if data.get("attempt") not in (None, attempt):
                    # A new attempt started: the page reloads to show it from the start.
                    yield sse("end", {"state": data.get("state"), "reload": True}, cursor)
                    return
                if data.get("state") in ("succeeded", "failed", "cancelled", "timed_out"):
                    # Rows are published before the final state; nothing more will come.
                    yield sse("end", {"state": data.get("state")}, cursor)
                    return
    finally:
        try:
            pubsub.close()
        except Exception:  # the connection may already be gone with the client
            pass
