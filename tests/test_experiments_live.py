"""Live updates over Server-Sent Events against a real threaded server, real Redis pub/sub
and the worker's real Ingestor: catch-up then live, no gaps, no duplicates, resume with
Last-Event-ID, and no database connection held while a stream idles."""

from __future__ import annotations

import json
import re
import threading

import pytest
import requests
from sqlalchemy import select

from tests.conftest import PASSWORD
from tests.experiments_support import (
    feed_run,
    make_experiment,
    scripted_run_lines,
    setup_project,
    upload_mnist_assets,
)


@pytest.fixture
def ctx(app, make_user, make_project, client, db_session):
    c = setup_project(make_user, make_project, client)
    c["ids"] = upload_mnist_assets(client, c["project_id"])
    return c


def browser_session(base: str, email: str) -> requests.Session:
    s = requests.Session()
    html = s.get(f"{base}/auth/login", timeout=30).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)
    r = s.post(f"{base}/auth/login", data={"csrf_token": token, "email": email, "password": PASSWORD}, timeout=30, allow_redirects=False)
    assert r.status_code in (302, 303)
    return s


class SseReader:
    """Reads one SSE response message by message (the browser's EventSource, by hand)."""

    def __init__(self, response):
        self.lines = response.iter_lines(decode_unicode=True)

    def next(self) -> dict | None:
        message: dict = {}
        for line in self.lines:
            if line == "":
                if "event" in message:
                    return message
                message = {}
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(": ")
            if field == "data":
                message["data"] = json.loads(value)
            elif field in ("id", "event", "retry"):
                message[field] = value
        return None

    def until(self, predicate) -> list[dict]:
        seen = []
        while True:
            message = self.next()
            assert message is not None, f"stream ended before the expected message; got {seen[-3:]}"
            seen.append(message)
            if predicate(message):
                return seen


# The page is not sent a client's report of a round (one per client: the client routes
# serve them, sorted and paged); every other event comes in order.
CLIENT_REPORTS = ("client_train", "client_evaluate")


def ids_of(messages, kind):
    return [m["data"]["id"] for m in messages if m["event"] == kind]


def test_catch_up_then_live_then_resume(app, ctx, live_server, db_session, tmp_path):
    from flautim.models import ExperimentEvent, LogRecord, db

    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    lines = list(scripted_run_lines(tmp_path))
    half = len(lines) // 2
    feed_run(app, exp_id, tmp_path, lines[:half], finish=None)

    session = browser_session(live_server.url, "dona@example.org")
    url = f"{live_server.url}/projects/{pid}/experiments/{exp_id}/stream"
    response = session.get(url, stream=True, timeout=(10, 60))
    assert response.headers["Content-Type"].startswith("text/event-stream")
    reader = SseReader(response)
    catch_up = reader.until(lambda m: m["event"] == "state")
    with app.app_context():
        stored_logs = [r.id for r in db.session.scalars(select(LogRecord).where(LogRecord.experiment_id == exp_id).order_by(LogRecord.id))]
        stored_events = [r.id for r in db.session.scalars(select(ExperimentEvent).where(ExperimentEvent.experiment_id == exp_id, ExperimentEvent.type.not_in(CLIENT_REPORTS)).order_by(ExperimentEvent.id))]
    assert ids_of(catch_up, "log") == stored_logs
    assert ids_of(catch_up, "event") == stored_events
    assert catch_up[-1]["data"]["state"] == "running"

    # While the stream idles on Redis, it holds no database connection (the test's own
    # session is closed first; nothing else in this process is using the database).
    db_session.close()
    assert db.engine.pool.checkedout() == 0

    # The rest of the run arrives live, then the final state and the end of the stream.
    feeder = threading.Thread(target=feed_run, args=(app, exp_id, tmp_path, lines[half:]))
    feeder.start()
    live = reader.until(lambda m: m["event"] == "end")
    feeder.join(60)
    response.close()
    every = catch_up + live
    with app.app_context():
        stored_logs = [r.id for r in db.session.scalars(select(LogRecord).where(LogRecord.experiment_id == exp_id).order_by(LogRecord.id))]
        stored_events = [r.id for r in db.session.scalars(select(ExperimentEvent).where(ExperimentEvent.experiment_id == exp_id, ExperimentEvent.type.not_in(CLIENT_REPORTS)).order_by(ExperimentEvent.id))]
    assert ids_of(every, "log") == stored_logs  # no gap, no duplicate, in order
    assert ids_of(every, "event") == stored_events
    assert [m["data"]["type"] for m in every if m["event"] == "event"][-1] == "run_finished"
    assert live[-1]["data"]["state"] == "succeeded"

    # A reconnect from the middle resumes exactly after the cursor.
    middle = next(m for m in catch_up if m["event"] == "log" and m["data"]["id"] > stored_logs[len(stored_logs) // 4])
    log_cursor, event_cursor = (int(x) for x in middle["id"].split("-"))
    resumed_response = session.get(url, headers={"Last-Event-ID": middle["id"]}, stream=True, timeout=(10, 60))
    resumed = SseReader(resumed_response).until(lambda m: m["event"] == "end")
    resumed_response.close()
    assert ids_of(resumed, "log") == [i for i in stored_logs if i > log_cursor]
    assert ids_of(resumed, "event") == [i for i in stored_events if i > event_cursor]


def test_duplicates_from_the_channel_are_dropped(app, ctx, live_server, tmp_path):
    """A message published again (a retry, or a row that was also in the catch-up) is
    not sent twice."""
    import redis as redis_lib

    from flautim.web.experiments.live import channel_for

    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    lines = list(scripted_run_lines(tmp_path))
    feed_run(app, exp_id, tmp_path, lines[:10], finish=None)
    session = browser_session(live_server.url, "dona@example.org")
    response = session.get(f"{live_server.url}/projects/{pid}/experiments/{exp_id}/stream", stream=True, timeout=(10, 60))
    reader = SseReader(response)
    catch_up = reader.until(lambda m: m["event"] == "state")
    last_log = catch_up[-2] if catch_up[-2]["event"] == "log" else next(m for m in reversed(catch_up) if m["event"] == "log")
    publisher = redis_lib.Redis.from_url(app.config["FLAUTIM_REDIS_URL_RESOLVED"])
    # Re-publish the last log row the page already has, then a new one and a state.
    publisher.publish(channel_for(publisher, exp_id), json.dumps(last_log["data"]))
    new = dict(last_log["data"], id=last_log["data"]["id"] + 1000, line="fresh line")
    publisher.publish(channel_for(publisher, exp_id), json.dumps(new))
    publisher.publish(channel_for(publisher, exp_id), json.dumps(new))
    publisher.publish(channel_for(publisher, exp_id), json.dumps({"kind": "state", "state": "succeeded", "attempt": 1}))
    live = reader.until(lambda m: m["event"] == "end")
    response.close()
    assert [m["data"]["line"] for m in live if m["event"] == "log"] == ["fresh line"]


def test_stream_of_a_finished_run_ends_after_catch_up(app, ctx, client, tmp_path):
    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    feed_run(app, exp_id, tmp_path, scripted_run_lines(tmp_path, rounds=1))
    body = client.get(f"/projects/{pid}/experiments/{exp_id}/stream").get_data(as_text=True)
    events = re.findall(r"^event: (\w+)$", body, re.M)
    assert events[-2:] == ["state", "end"]
    assert "event: log" in body and "event: event" in body


def test_cursor_parsing():
    from flautim.web.experiments.live import Cursor

    assert (Cursor.parse("12-7").log_id, Cursor.parse("12-7").event_id, Cursor.parse("12-7").resumed) == (12, 7, True)
    for bad in (None, "", "abc", "1-", "-2", "1-2-3", "x-1"):
        assert Cursor.parse(bad).resumed is False


def test_first_open_gets_the_tail_of_the_log(app, ctx, client, tmp_path, monkeypatch):
    """Without Last-Event-ID the stream sends the last CATCH_UP_LOG_LINES lines (all of
    them when there are fewer), in order, each once; a reconnect mid-catch-up too."""
    from flautim.models import LogRecord, db
    from flautim.web.experiments import live

    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    feed_run(app, exp_id, tmp_path, scripted_run_lines(tmp_path, rounds=2))
    with app.app_context():
        stored = list(db.session.scalars(
            select(LogRecord.id).where(LogRecord.experiment_id == exp_id).order_by(LogRecord.id)))
    assert len(stored) > 5

    def open_stream(headers=None) -> str:
        return client.get(f"/projects/{pid}/experiments/{exp_id}/stream", headers=headers).get_data(as_text=True)

    def logs_sent(body=None) -> list[int]:
        body = body or open_stream()
        return [json.loads(data)["id"] for data in re.findall(r"^event: log\ndata: (.*)$", body, re.M)]

    monkeypatch.setattr(live, "CATCH_UP_LOG_LINES", 5)
    assert logs_sent() == stored[-5:]
    # The events come first, and their ids already name the tail: a reconnect from one of
    # them (the connection dropped mid-catch-up) resumes at the tail, not at line one.
    first_event_id = re.search(r"^id: (\S+)\nevent: event$", open_stream(), re.M).group(1)
    assert int(first_event_id.split("-")[0]) == stored[-5] - 1
    assert logs_sent(open_stream({"Last-Event-ID": first_event_id})) == stored[-5:]
    monkeypatch.setattr(live, "CATCH_UP_LOG_LINES", len(stored))
    assert logs_sent() == stored
    monkeypatch.setattr(live, "CATCH_UP_LOG_LINES", len(stored) + 10)
    assert logs_sent() == stored


def test_sse_messages_take_what_a_run_may_print():
    """An event's payload is the run's (hostile) output: an integer past 64 bits, text
    that is not ASCII and a newline still make one well-formed message."""
    from datetime import UTC, datetime

    from flautim.web.experiments.live import Cursor, sse

    payload = {"round": 10**30, "note": "época\nnova", "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}
    text = sse("event", {"kind": "event", "id": 7, "payload": payload}, Cursor(3, 7))
    head, data = text.split("data: ")
    assert head == "id: 3-7\nevent: event\n" and text.endswith("\n\n") and data.count("\n") == 2
    assert json.loads(data)["payload"] == {"round": 10**30, "note": "época\nnova", "at": "2026-01-02T03:04:05+00:00"}
