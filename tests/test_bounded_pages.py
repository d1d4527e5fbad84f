"""A run that reported a lot (50,000 events, 200,000 metric rows, inserted directly as the
worker would have stored them) leaves the experiment page's stream catch-up, curves.json
and the Compare page bounded: sizes and counts are asserted, including the most rows any
one SQL statement returned, not times."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import event, text

from tests.experiments_support import setup_project

ROUNDS = 12_500  # x 4 events = 50,000 events (+2); x 16 metric rows = 200,000 metric rows
CATCH_UP_EVENTS = 300
MAX_POINTS = 200
SPIKE_ROUND = 777  # the central accuracy's best round, which downsampling would skip


@pytest.fixture
def config_overrides():
    return {"STREAM_CATCH_UP_EVENTS": CATCH_UP_EVENTS, "CURVE_MAX_POINTS": MAX_POINTS}


@pytest.fixture
def ctx(app, make_user, make_project, client, db_session):
    return setup_project(make_user, make_project, client)


def _big_run(project_id: int, state: str = "succeeded") -> int:
    """An experiment with ROUNDS rounds of events and metric rows, inserted in bulk."""
    from flautim.models import Experiment, ExperimentState, db

    experiment = Experiment(project_id=project_id, name="long", state=ExperimentState(state), attempt=1,
                            rounds_total=ROUNDS, rounds_done=ROUNDS, summary={})
    db.session.add(experiment)
    db.session.commit()
    if db.engine.dialect.name != "postgresql":
        pytest.skip("bulk seeding uses PostgreSQL's generate_series")
    params = {"e": experiment.id, "n": ROUNDS, "spike": SPIKE_ROUND}
    db.session.execute(text(
        "INSERT INTO experiment_events (experiment_id, attempt, type, payload, created_at) VALUES "
        "(:e, 1, 'run_started', json_build_object('rounds', :n, 'ts', 1000), now()),"
        "(:e, 1, 'partition_summary', json_build_object('method', 'iid', 'clients', json_build_array("
        "json_build_object('client', 0, 'train_examples', 10, 'val_examples', 2))), now())"), params)
    db.session.execute(text(
        "INSERT INTO experiment_events (experiment_id, attempt, type, payload, created_at) "
        "SELECT :e, 1, t.type, CASE t.type "
        " WHEN 'aggregated' THEN json_build_object('round', r, 'phase', t.phase, 'loss', 1.0 / r,"
        "   'metrics', json_build_object('accuracy', r::float / :n))"
        " WHEN 'central_evaluate' THEN json_build_object('round', r, 'loss', 1.0 / r,"
        "   'metrics', json_build_object('accuracy', CASE WHEN r = :spike THEN 0.99 ELSE 0.5 + 0.4 * r / :n END))"
        " ELSE json_build_object('round', r, 'client', 0, 'loss', 1.0 / r, 'examples', 10) END, now() "
        "FROM generate_series(1, :n) AS r, (VALUES (1, 'aggregated', 'train'), (2, 'aggregated', 'evaluate'),"
        " (3, 'central_evaluate', NULL), (4, 'client_train', NULL)) AS t(k, type, phase) ORDER BY r, t.k"), params)
    db.session.execute(text(
        "INSERT INTO metric_rows (experiment_id, attempt, round, phase, source, name, value) "
        "SELECT :e, 1, r, s.phase, s.source, s.name, CASE "
        " WHEN s.name = 'loss' THEN 1.0 / r"
        " WHEN s.phase = 'central' AND r = :spike THEN 0.99"
        " WHEN s.phase = 'central' THEN 0.5 + 0.4 * r / :n"
        " ELSE r::float / :n END "
        "FROM generate_series(1, :n) AS r, (VALUES ('train', 'aggregate', 'loss'), ('train', 'aggregate', 'accuracy'),"
        " ('evaluate', 'aggregate', 'loss'), ('evaluate', 'aggregate', 'accuracy'),"
        " ('central', 'server', 'loss'), ('central', 'server', 'accuracy'),"
        " ('train', 'client-0', 'loss'), ('train', 'client-1', 'loss'), ('train', 'client-2', 'loss'),"
        " ('train', 'client-3', 'loss'), ('train', 'client-4', 'loss'),"
        " ('evaluate', 'client-0', 'loss'), ('evaluate', 'client-1', 'loss'), ('evaluate', 'client-2', 'loss'),"
        " ('evaluate', 'client-3', 'loss'), ('evaluate', 'client-4', 'loss')) AS s(phase, source, name)"), params)
    db.session.commit()
    counts = db.session.execute(text(
        "SELECT (SELECT count(*) FROM experiment_events WHERE experiment_id = :e),"
        " (SELECT count(*) FROM metric_rows WHERE experiment_id = :e)"), params).one()
    assert tuple(counts) == (4 * ROUNDS + 2, 16 * ROUNDS)
    return experiment.id


class RowsPerStatement:
    """The most rows any one SQL statement returned (psycopg knows a SELECT's rowcount)."""

    def __init__(self, engine):
        self.engine, self.most = engine, 0

    def __enter__(self):
        event.listen(self.engine, "after_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "after_cursor_execute", self._seen)

    def _seen(self, _conn, cursor, statement, *_args):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            self.most = max(self.most, cursor.rowcount or 0)


def _messages(body: str) -> list[tuple[str, dict]]:
    return [(kind, json.loads(data)) for kind, data in re.findall(r"^event: (\w+)\ndata: (.*)$", body, re.M)]


def _assert_bounded_curves(curves: dict) -> None:
    for metric in ("loss", "accuracy"):
        for key in ("train", "evaluate", "central"):
            points = curves["metrics"][metric][key]
            assert 0 < len(points) <= MAX_POINTS + 1, (metric, key, len(points))
            assert points[-1][0] == ROUNDS  # the last point is always the last round
            assert [p[0] for p in points] == sorted({p[0] for p in points})
    assert curves["downsampled"] is True and curves["max_points"] == MAX_POINTS


def test_stream_catch_up_of_a_long_run_is_bounded(app, client, ctx, db_session):
    from flautim.models import db

    pid = ctx["project_id"]
    exp_id = _big_run(pid, state="running")
    url = f"/projects/{pid}/experiments/{exp_id}/stream"
    with RowsPerStatement(db.engine) as rows:
        # A first open, and a reconnect from the start of the run (Last-Event-ID "0-0"): both
        # would have sent all 50,002 events.
        for headers in ({}, {"Last-Event-ID": "0-0"}):
            response = client.get(url, headers=headers, buffered=False)
            chunks = iter(response.response)
            next(chunks)  # "retry"
            body = next(chunks).decode()  # the whole catch-up, one piece
            response.close()
            messages = _messages(body)
            kinds = [kind for kind, _data in messages]
            assert kinds[0] == "summary" and kinds[-1] == "state"
            events = [data for kind, data in messages if kind == "event"]
            assert len(events) == CATCH_UP_EVENTS
            # The newest ones, in order; the clients' reports are not sent to the page.
            assert "client_train" not in {e["type"] for e in events}
            assert [e["payload"]["round"] for e in events[-3:]] == [ROUNDS] * 3
            summary = messages[0][1]
            assert summary["skipped_events"] == 3 * ROUNDS + 2 - CATCH_UP_EVENTS
            # The old events the page needs whatever their age came with the summary.
            assert {e["type"] for e in summary["events"]} >= {"run_started", "partition_summary"}
            _assert_bounded_curves(summary["curves"])
            assert len(body) < 200_000
            # Every id sent names the tail's start: a reconnect mid-catch-up resumes there.
            first_id = re.search(r"^id: (\S+)$", body, re.M).group(1)
            assert int(first_id.split("-")[1]) == events[0]["id"] - 1
    assert rows.most <= CATCH_UP_EVENTS + 1 + 3 * 2 * (MAX_POINTS + 1)


def test_curves_and_compare_of_a_long_run_are_bounded(app, client, ctx, db_session):
    from flautim.models import db

    pid = ctx["project_id"]
    long_run = _big_run(pid)
    short_run = _big_run_short(pid)
    with RowsPerStatement(db.engine) as rows:
        curves = client.get(f"/projects/{pid}/experiments/{long_run}/curves.json").get_json()
        _assert_bounded_curves(curves)
        # The best value is the whole curve's, not the downsampled points'.
        assert SPIKE_ROUND not in [p[0] for p in curves["metrics"]["accuracy"]["central"]]
        assert curves["best"]["accuracy"]["central"] == pytest.approx(0.99)
        assert curves["rounds"]["loss"]["central"] == ROUNDS

        page = client.get(f"/projects/{pid}/experiments/compare?ids={long_run}&ids={short_run}")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert 'data-testid="compare-downsampled"' in html and f"reduzidas a {MAX_POINTS} pontos" in html
        table = html.split('data-testid="compare-table"', 1)[1]
        assert "0.9000" in table  # the long run's final central accuracy (round 12,500)
        assert "0.9900" in table  # and its best, at round 777
        assert f"<td>{ROUNDS}</td>" in table

        show = client.get(f"/projects/{pid}/experiments/{long_run}")
        assert show.status_code == 200
        assert 'data-testid="curves-note"' in show.get_data(as_text=True)
    assert rows.most <= 3 * 2 * (MAX_POINTS + 1)


def _big_run_short(project_id: int) -> int:
    """A 3-round run beside the long one: not downsampled."""
    from flautim.models import Experiment, ExperimentState, MetricRow, db

    experiment = Experiment(project_id=project_id, name="short", state=ExperimentState.SUCCEEDED, attempt=1,
                            rounds_total=3, rounds_done=3, summary={})
    db.session.add(experiment)
    db.session.flush()
    for r in (1, 2, 3):
        db.session.add(MetricRow(experiment_id=experiment.id, attempt=1, round=r, phase="central",
                                 source="server", name="accuracy", value=0.1 * r))
        db.session.add(MetricRow(experiment_id=experiment.id, attempt=1, round=r, phase="central",
                                 source="server", name="loss", value=1.0 / r))
    db.session.commit()
    return experiment.id


def test_short_curves_are_whole(app, client, ctx, db_session):
    pid = ctx["project_id"]
    exp_id = _big_run_short(pid)
    curves = client.get(f"/projects/{pid}/experiments/{exp_id}/curves.json").get_json()
    assert curves["metrics"]["accuracy"]["central"] == [[1, pytest.approx(0.1)], [2, pytest.approx(0.2)], [3, pytest.approx(0.3)]]
    assert curves["downsampled"] is False and curves["metrics"]["loss"]["train"] == []
