"""Live updates of an experiment as Server-Sent Events, fed by Redis pub/sub.

The worker stores each row (LogRecord, ExperimentEvent) and then publishes it on the
experiment's channel; the catch-up sends the same messages built from the rows
(`flautim.live_messages`: one builder per kind).
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
from sqlalchemy import bindparam, func, select

from flautim.live_messages import channel_for, event_message, log_message, state_message
from flautim.models import Experiment, ExperimentEvent, Membership, User, db

from .client_results import for_page, page_events
from .results import curves_of, experiment_logs

log = logging.getLogger(__name__)

PING_EVERY_S = 15.0
# A catch-up (a first open, or a reconnect far behind) sends the newest rows only: the
# log's last lines (older ones are in the download) and the attempt's newest events
# (STREAM_CATCH_UP_EVENTS; older ones are summarised: the curves, and the newest event of
# each SUMMARY_EVENT_TYPES). Each also within a byte budget, newest first: one event or
# line may be 1 MB.
CATCH_UP_LOG_LINES = 2000
CATCH_UP_EVENTS = 2000
CATCH_UP_BYTES = 4 * 1024 * 1024
SUMMARY_EVENT_TYPES = ("run_started", "partition_summary", "error", "run_finished")


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
    select(Membership.id)
    .join(User, User.id == Membership.user_id)
    .join(Experiment, Experiment.project_id == Membership.project_id)
    .where(
        Membership.user_id == bindparam("user_id"),
        Membership.project_id == bindparam("project_id"),
        Experiment.id == bindparam("experiment_id"),
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


def sse(kind: str, data: dict[str, Any], cursor: Cursor | None = None) -> str:
    return _sse_encoded(kind, _json(data), cursor)


def _sse_encoded(kind: str, data: str, cursor: Cursor | None = None) -> str:
    head = f"id: {cursor}\nevent: {kind}\n" if cursor is not None else f"event: {kind}\n"
    return f"{head}data: {data}\n\n"


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


def _within_budget(newest_first, to_data, budget: int) -> tuple[list[tuple[int, str]], bool]:
    """(id, JSON) of the newest rows whose JSON fits in `budget` bytes (at least one), oldest
    first, and whether any row was left out."""
    kept: list[tuple[int, str]] = []
    used = 0
    for row in newest_first:
        data = _json(to_data(*row))
        used += len(data)
        if used > budget and kept:
            return kept[::-1], True
        kept.append((row[0], data))
    return kept[::-1], False


def page_event_message(id: int, attempt: int, type: str, payload: Any) -> dict[str, Any]:
    """An event row as the live page gets it (client_results.for_page); client reports
    never reach here, the catch-up's queries leave them out."""
    return for_page(event_message(id, attempt, type, payload)) or {}


def _summary(experiment: Experiment, attempt: int, after_id: int, before_id: int) -> dict[str, Any]:
    """What the events left out (ids in (after_id, before_id)) showed: how many, the curves
    (bounded, from the metric rows), and the newest of each SUMMARY_EVENT_TYPES."""
    left_out = (ExperimentEvent.experiment_id == experiment.id, ExperimentEvent.attempt == attempt,
                ExperimentEvent.id > after_id, ExperimentEvent.id < before_id,
                page_events())
    skipped = db.session.scalar(select(func.count()).select_from(ExperimentEvent).where(*left_out))
    newest_ids = select(func.max(ExperimentEvent.id)).where(
        *left_out, ExperimentEvent.type.in_(SUMMARY_EVENT_TYPES)).group_by(ExperimentEvent.type)
    singles = db.session.execute(
        select(*EVENT_COLUMNS).where(ExperimentEvent.id.in_(newest_ids)).order_by(ExperimentEvent.id)
    ).all()
    curves = curves_of(experiment, attempt)
    return {
        "kind": "summary",
        "skipped_events": skipped,
        "events": [page_event_message(*row) for row in singles],
        "curves": {key: curves[key] for key in ("headline", "names", "metrics", "modes", "metrics_left_out", "downsampled",
                                                "max_points")},
    }


def _catch_up(
    app: Flask, experiment_id: int, cursor: Cursor, max_events: int = CATCH_UP_EVENTS
) -> tuple[str, dict[str, Any]]:
    """The newest rows after the cursor (the current attempt's), then the state, as one
    piece of SSE text: thousands of small writes cost the server more than building them.
    Bounded however far behind the cursor is: at most `max_events` events and
    CATCH_UP_LOG_LINES lines, each kind within CATCH_UP_BYTES, preceded by a `summary` of
    the events left out. The cursor moves to the start of what is sent before anything is
    sent, so every id carries it: a reconnect in the middle resumes there, not at the
    first row. Rows are read as columns, not ORM objects. Runs in its own app context so
    the DB connection goes back to the pool before the stream idles."""
    out: list[str] = []
    with app.app_context():
        experiment = db.session.get(Experiment, experiment_id)
        attempt = experiment.attempt
        newest_events = db.session.execute(
            select(*EVENT_COLUMNS)
            .where(ExperimentEvent.experiment_id == experiment_id, ExperimentEvent.attempt == attempt,
                   ExperimentEvent.id > cursor.event_id, page_events())
            .order_by(ExperimentEvent.id.desc())
            .limit(max_events + 1)
        ).all()
        events, events_left_out = _within_budget(newest_events[:max_events], page_event_message, CATCH_UP_BYTES)
        events_left_out = events_left_out or len(newest_events) > max_events
        lines = experiment_logs(experiment, attempt=attempt, after_id=cursor.log_id,
                                limit=CATCH_UP_LOG_LINES + 1, tail=True)
        sent_lines, lines_left_out = _within_budget(lines[::-1][:CATCH_UP_LOG_LINES], log_message, CATCH_UP_BYTES)
        lines_left_out = lines_left_out or len(lines) > CATCH_UP_LOG_LINES
        summary = None
        if events_left_out:
            summary = _summary(experiment, attempt, cursor.event_id, events[0][0])
            cursor.event_id = events[0][0] - 1
        if lines_left_out:
            cursor.log_id = sent_lines[0][0] - 1
        if summary is not None:
            out.append(sse("summary", summary, cursor))
        for id_, data in events:
            cursor.event_id = id_
            out.append(_sse_encoded("event", data, cursor))
        for id_, data in sent_lines:
            cursor.log_id = id_
            out.append(_sse_encoded("log", data, cursor))
        state = state_message(experiment)
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
    catch_up_events: int = CATCH_UP_EVENTS,
) -> Iterator[str]:
    """The SSE body for one browser connection. `still_allowed` is asked every `recheck_s`
    seconds; once it says no, the stream ends with `end {"revoked": true}`."""
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(channel_for(redis_client, experiment_id))
        # Tell the browser to reconnect after 1 s, and flush proxies at once.
        yield "retry: 1000\n: open\n\n"
        caught_up, state = _catch_up(app, experiment_id, cursor, catch_up_events)
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
                if now - last_write >= recheck_s:
                    # Only a write notices a closed connection: a client gone frees its
                    # slot within a re-check, not at the next 15 s ping.
                    last_write = now
                    yield ": ping\n\n"
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
                data = for_page(data)
                if data is None:
                    continue
                cursor.event_id = data["id"]
                last_write = now
                yield sse("event", data, cursor)
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
