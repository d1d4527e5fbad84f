"""Ingesting a run's output: hostile lines, derived rows, the log cap, the log's order and live
messages."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
import redis
from sqlalchemy import select

from flautim.fl.events import EVENT_PREFIX, make_event
from flautim.models import Experiment, ExperimentEvent, LogRecord, MetricRow, ModelArtifact, db
from flautim.worker.ingest import Ingestor, LogOrderError
from flautim.worker.queue import channel_for
from tests.conftest import REDIS_URL


@pytest.fixture
def config_overrides():
    return {"MAX_LOG_LINES_PER_EXPERIMENT": 30}


def _event(type_, **fields):
    return EVENT_PREFIX + json.dumps(make_event(type_, **fields))


def test_events_become_rows_summary_and_live_messages(app, experiment_id, tmp_path):
    client = redis.Redis.from_url(REDIS_URL)
    listener = client.pubsub()
    listener.subscribe(channel_for(client, experiment_id))
    out = tmp_path / "out"
    (out / "ckpt").mkdir(parents=True)
    (out / "ckpt" / "r1.pt").write_bytes(b"model-bytes")
    ingest = Ingestor(app.extensions["flautim_config"], experiment_id, 1, out, redis_client=redis.Redis.from_url(REDIS_URL))
    t0 = time.time()
    lines = [
        _event("run_started", experiment="e", transport="fast", clients=2, rounds=4, strategy="FedAvg", hyperparameters={}),
        _event("round_started", round=1),
        _event("client_train", round=1, client=0, loss=0.9, metrics={"accuracy": 0.5, "bad": "x"}, examples=10, duration_s=0.1),
        _event("aggregated", round=1, phase="evaluate", loss=0.8, metrics={"accuracy": 0.6}),
        _event("central_evaluate", round=1, loss=0.7, metrics={"accuracy": 0.65}),
        _event("checkpoint", round=1, kind="round", files={"pytorch": "ckpt/r1.pt"}, metrics={}),
        _event("round_started", round=2),
        _event("central_evaluate", round=2, loss=float("nan"), metrics={"accuracy": 0.6}),
        EVENT_PREFIX + "{broken json",
        EVENT_PREFIX + json.dumps({"v": 1, "type": "client_train", "ts": t0}),
        "plain \x00 line",
    ]
    for line in lines:
        ingest.line("server", "stdout", line)
    ingest.line("client-1", "stderr", "Traceback (most recent call last):")
    ingest.close()

    with app.app_context():
        events = db.session.execute(select(ExperimentEvent.type).where(
            ExperimentEvent.experiment_id == experiment_id).order_by(ExperimentEvent.id)).scalars().all()
        assert events == ["run_started", "round_started", "client_train", "aggregated",
                          "central_evaluate", "checkpoint", "round_started", "central_evaluate"]
        logs = db.session.execute(select(LogRecord).where(
            LogRecord.experiment_id == experiment_id).order_by(LogRecord.id)).scalars().all()
        texts = [r.line for r in logs]
        assert any("broken json" in t and "invalid event ignored" in t for t in texts)
        assert any("lacks" in t for t in texts)
        assert "plain  line" in texts
        assert ("client-1", "stderr") in {(r.source, r.stream) for r in logs}
        metrics = {(m.phase, m.source, m.name, m.round): m.value for m in db.session.execute(
            select(MetricRow).where(MetricRow.experiment_id == experiment_id)).scalars()}
        assert metrics[("train", "client-0", "loss", 1)] == 0.9
        assert metrics[("train", "client-0", "accuracy", 1)] == 0.5
        assert ("train", "client-0", "bad", 1) not in metrics
        assert metrics[("evaluate", "aggregate", "accuracy", 1)] == 0.6
        assert metrics[("central", "server", "accuracy", 2)] == 0.6
        assert ("central", "server", "loss", 2) not in metrics  # NaN is not a number to plot
        artifact = db.session.execute(select(ModelArtifact).where(
            ModelArtifact.experiment_id == experiment_id)).scalar_one()
        assert artifact.size_bytes == len(b"model-bytes") and artifact.format == "pytorch"
        experiment = db.session.get(Experiment, experiment_id)
        assert experiment.rounds_total == 4 and experiment.rounds_done == 2
        assert (experiment.summary["metric"], experiment.summary["metric_mode"]) == ("accuracy", "max")
        assert experiment.summary["metric_value"] == 0.6
        assert experiment.summary["metric_best"] == 0.65
        assert experiment.summary["best_loss"] == 0.7
        assert "eta_s" in experiment.summary and "mean_round_s" in experiment.summary

    seen = []
    while (message := listener.get_message(timeout=1)) is not None:
        if message["type"] == "message":
            seen.append(json.loads(message["data"]))
    kinds = {m["kind"] for m in seen}
    assert kinds == {"log", "event", "state"}
    log_ids = [m["id"] for m in seen if m["kind"] == "log"]
    assert log_ids == sorted(log_ids) and all(isinstance(i, int) for i in log_ids)


def test_log_lines_past_the_cap_are_not_stored_but_events_are(app, experiment_id, tmp_path):
    ingest = Ingestor(app.extensions["flautim_config"], experiment_id, 1, tmp_path, redis_client=None)
    for i in range(100):
        ingest.line("client-0", "stdout", f"line {i}")
    ingest.line("server", "stdout", _event("round_started", round=1))
    ingest.close()
    with app.app_context():
        logs = db.session.execute(select(LogRecord.line).where(
            LogRecord.experiment_id == experiment_id)).scalars().all()
        assert len(logs) == 31
        assert "more than 30 lines" in logs[-1]
        assert db.session.execute(select(ExperimentEvent).where(
            ExperimentEvent.experiment_id == experiment_id)).scalar_one().type == "round_started"
    assert ingest.truncated


def test_redis_away_only_delays_live_updates(app, experiment_id, tmp_path):
    """Publishing to a Redis that is down (restarting) must not lose the stored rows."""
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    ingest = Ingestor(app.extensions["flautim_config"], experiment_id, 1, tmp_path, redis_client=down)
    ingest.line("server", "stdout", "still stored")
    ingest.line("server", "stdout", _event("round_started", round=1))
    ingest.close()
    with app.app_context():
        assert db.session.execute(select(LogRecord.line).where(
            LogRecord.experiment_id == experiment_id)).scalars().all() == ["still stored"]
        assert db.session.get(Experiment, experiment_id).rounds_done == 0


def _lines(app, experiment_id: int) -> list[tuple[int, str]]:
    with app.app_context():
        return db.session.execute(select(LogRecord.id, LogRecord.line).where(
            LogRecord.experiment_id == experiment_id).order_by(LogRecord.id)).all()


def test_lines_are_stored_in_printed_order_with_ascending_ids(app, experiment_id, tmp_path):
    ingest = Ingestor(app.extensions["flautim_config"], experiment_id, 1, tmp_path, redis_client=None)
    for i in range(25):
        ingest.line("client-0", "stdout", f"line {i}")
    ingest.close()
    assert [line for _id, line in _lines(app, experiment_id)] == [f"line {i}" for i in range(25)]


def test_lines_that_would_land_below_a_stored_id_are_refused(app, experiment_id, tmp_path, caplog):
    """The log catch-up keeps full blocks of lines as final (flautim/web/api/log_pages.py),
    so no line may be stored below ids a reader may have seen. A line planted with an id far
    above the sequence's next values stands for a writer that broke that rule: the ingestor
    refuses to put lines below it, and says why in the worker's log."""
    with app.app_context():
        db.session.add(LogRecord(id=2_000_000_000, experiment_id=experiment_id, attempt=1,
                                 source="server", stream="stdout", line="out of order"))
        db.session.commit()
    ingest = Ingestor(app.extensions["flautim_config"], experiment_id, 1, tmp_path, redis_client=None)
    with caplog.at_level(logging.ERROR, logger="flautim.worker.ingest"):
        ingest.line("server", "stdout", "after it")
        ingest.close()
    assert _lines(app, experiment_id) == [(2_000_000_000, "out of order")]
    refusals = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert refusals and all(isinstance(e, LogOrderError) for e in refusals)
    assert "not ascending above the highest stored id 2000000000" in str(refusals[0])


def test_live_messages_reload_no_row_after_the_commit(app, experiment_id, tmp_path):
    """A batch's live messages are built from its rows before the commit expires them;
    read after it, every line and event cost a SELECT of its own (the worker's CPU at
    1,000 clients went largely to these)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    client = redis.Redis.from_url(REDIS_URL)
    listener = client.pubsub()
    listener.subscribe(channel_for(client, experiment_id))
    reloads = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if re.search(r"FROM (log_records|experiment_events)\s+WHERE \1\.id =", statement):
            reloads.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        ingest = Ingestor(app.extensions["flautim_config"], experiment_id, 1, tmp_path / "out",
                          redis_client=redis.Redis.from_url(REDIS_URL))
        for i in range(20):
            ingest.line("client-1", "stdout", f"line {i}")
            ingest.line("server", "stdout", _event("client_train", round=1, client=i, loss=0.5, metrics={},
                                                   examples=4, duration_s=0.01))
        ingest.close()
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert reloads == []
    kinds, deadline = [], time.time() + 5
    while len(kinds) < 40 and time.time() < deadline:
        message = listener.get_message(timeout=0.5)
        if message and message["type"] == "message":
            kinds.append(json.loads(message["data"])["kind"])
    # Every line and event still reaches the live page (and the state, once events came).
    assert kinds.count("log") == 20 and kinds.count("event") >= 20


def test_close_ends_the_flushers_wait_for_a_line(app, experiment_id, tmp_path, monkeypatch):
    """close() wakes the flusher rather than letting it wait out its interval for a line
    that will never come (the run's final state waits on close()), whether it was idle or
    had just taken the run's last lines."""
    import flautim.worker.ingest as ingest_module

    monkeypatch.setattr(ingest_module, "FLUSH_INTERVAL_S", 60)
    config = app.extensions["flautim_config"]
    idle = Ingestor(config, experiment_id, 1, tmp_path / "a", redis_client=None)
    idle.line("server", "stdout", "the last line")
    deadline = time.monotonic() + 10
    while idle.lines_stored < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert idle.lines_stored == 1  # written; the flusher now waits for the next line
    idle.close(timeout=5)
    assert not idle._thread.is_alive()  # with a 60 s wait it would still be waiting

    busy = Ingestor(config, experiment_id, 1, tmp_path / "b", redis_client=None)
    busy.line("server", "stdout", "printed just before the run ended")
    busy.close(timeout=5)
    assert not busy._thread.is_alive() and busy.lines_stored == 1


def test_lines_arriving_together_share_a_transaction(app, experiment_id, tmp_path, monkeypatch):
    """A run prints a few lines at a time; the flusher waits LINGER_S after a batch's first
    line for more, rather than committing (and publishing) each handful on its own."""
    writes = []
    original = Ingestor._write

    def counted(self, batch):
        writes.append(len(batch))
        return original(self, batch)

    monkeypatch.setattr(Ingestor, "_write", counted)
    ingest = Ingestor(app.extensions["flautim_config"], experiment_id, 1, tmp_path / "out", redis_client=None)
    for i in range(20):
        ingest.line("client-1", "stderr", f"line {i}")
        time.sleep(0.002)
    ingest.close()
    assert ingest.lines_stored == 20
    assert len(writes) <= 3, writes  # one transaction per line or two without the wait
