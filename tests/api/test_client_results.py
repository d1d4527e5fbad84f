"""Saídas and the API at 1,000 clients (issue 15 §1): a run's client reports, stored by the
worker's real Ingestor as a run would print them, answer through bounded endpoints — the
spread of client losses and example counts per round (numbers checked against numpy), one
round's clients sorted and paged, the partition's label mix sampled to what a chart holds —
and neither the page nor its live stream carries a row per client."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sqlalchemy import select

from tests.api.conftest import bearer
from tests.experiments_support import (
    event_line,
    feed_run,
    make_experiment,
    setup_project,
    upload_mnist_assets,
)

CLIENTS = 1000
ROUNDS = 2


def train_loss(c: int, r: int) -> float:
    return ((c * 37) % 1000) / 100 + r


def eval_loss(c: int, r: int) -> float:
    return (c % 7) + 0.5 * r


def examples(c: int) -> int:
    return 10 + c % 50


def label_counts(c: int) -> dict[str, int]:
    # Every fifth client holds a single label.
    counts = {str(c % 10): 50}
    if c % 5:
        counts[str((c + 1) % 10)] = c % 5
    return counts


def thousand_client_lines(clients: int = CLIENTS):
    yield "server", event_line("run_started", experiment="Exp", transport="fast", clients=clients, rounds=ROUNDS,
                               strategy="FedAvg", hyperparameters={"rounds": ROUNDS})
    yield "server", event_line("partition_summary", method="dirichlet", clients=[
        {"client": c, "train_examples": sum(label_counts(c).values()), "val_examples": 5, "label_counts": label_counts(c)}
        for c in range(clients)])
    for r in range(1, ROUNDS + 1):
        yield "server", event_line("round_started", round=r)
        for c in range(clients):
            yield "server", event_line("client_train", round=r, client=c, loss=train_loss(c, r),
                                       metrics={"accuracy": c / CLIENTS}, examples=examples(c), duration_s=0.01)
        for c in range(clients):
            yield "server", event_line("client_evaluate", round=r, client=c, loss=eval_loss(c, r),
                                       metrics={"accuracy": 0.5}, examples=5, duration_s=0.01)
        yield "server", event_line("aggregated", round=r, phase="train", loss=1.0 / r, metrics={"accuracy": 0.5})
        yield "server", event_line("aggregated", round=r, phase="evaluate", loss=1.1 / r, metrics={"accuracy": 0.5})
    yield "server", event_line("run_finished", status="completed", duration_s=4.5, rounds_completed=ROUNDS)


@pytest.fixture
def ctx(app, make_user, make_project, client, db_session):
    c = setup_project(make_user, make_project, client)
    c["ids"] = upload_mnist_assets(client, c["project_id"])
    return c


@pytest.fixture
def big_run(app, ctx, tmp_path):
    exp_id = make_experiment(ctx["project_id"], ctx["ids"], state="running")
    feed_run(app, exp_id, tmp_path, thousand_client_lines(), finish="succeeded")
    return exp_id


@pytest.fixture
def small_run(app, ctx, tmp_path):
    exp_id = make_experiment(ctx["project_id"], ctx["ids"], state="running")
    feed_run(app, exp_id, tmp_path, thousand_client_lines(clients=20), finish="succeeded")
    return exp_id


def _quartiles(values) -> list[float]:
    return [float(v) for v in np.percentile(np.array(values, dtype=float), [0, 25, 50, 75, 100])]


def _spread_numbers(spread: dict) -> list[float]:
    return [spread[k] for k in ("min", "q1", "median", "q3", "max")]


def test_a_thousand_clients_answer_in_bounded_pages(app, ctx, big_run, client, make_token):
    from flautim.web.api import schemas as s

    pid = ctx["project_id"]
    api = f"/api/v1/projects/{pid}/experiments/{big_run}"
    headers = bearer(make_token(ctx["owner"]))

    def get(path: str, **params):
        response = client.get(api + path, query_string=params, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        assert len(response.data) < 40_000, (path, params, len(response.data))
        return response.get_json()

    # The spread across clients per round, newest rounds first page, numbers as numpy's.
    summary = s.ClientSummary.model_validate(get("/clients/summary")).model_dump()
    assert [r["round"] for r in summary["rounds"]] == list(range(1, ROUNDS + 1)) and not summary["has_more"]
    for spread in summary["rounds"]:
        r = spread["round"]
        assert spread["clients"] == CLIENTS and spread["loss"]["count"] == CLIENTS
        assert _spread_numbers(spread["loss"]) == pytest.approx(_quartiles([train_loss(c, r) for c in range(CLIENTS)]))
        assert _spread_numbers(spread["examples"]) == pytest.approx(_quartiles([examples(c) for c in range(CLIENTS)]))
        assert spread["examples"]["total"] == sum(examples(c) for c in range(CLIENTS))
    evaluated = get("/clients/summary", phase="evaluate")["rounds"][-1]
    assert _spread_numbers(evaluated["loss"]) == pytest.approx(_quartiles([eval_loss(c, ROUNDS) for c in range(CLIENTS)]))
    assert evaluated["examples"]["total"] == 5 * CLIENTS
    # Older rounds page backwards.
    newest = get("/clients/summary", limit=1)
    assert [r["round"] for r in newest["rounds"]] == [ROUNDS] and newest["has_more"]
    older = get("/clients/summary", limit=1, round_max=newest["next_round_max"])
    assert [r["round"] for r in older["rounds"]] == [ROUNDS - 1] and not older["has_more"]

    # One round's clients: the newest round by default, 50 a page, sorted by the database.
    table = s.ClientTable.model_validate(get("/clients")).model_dump()
    assert table["round"] == ROUNDS and table["total"] == CLIENTS and len(table["items"]) == 50
    assert [row["client"] for row in table["items"]] == list(range(50))
    first = table["items"][0]
    assert first["train_loss"] == pytest.approx(train_loss(0, ROUNDS))
    assert first["evaluate_loss"] == pytest.approx(eval_loss(0, ROUNDS))
    assert first["examples"] == examples(0) and first["duration_s"] == pytest.approx(0.01)
    assert table["metric"] == "accuracy" and first["train_metric"] == 0 and first["evaluate_metric"] == 0.5
    # Any metric the clients reported, by name (from its metric rows), sorts the same way.
    by_metric = get("/clients", metric="accuracy", sort="train_metric", order="desc", limit=3)
    assert [row["client"] for row in by_metric["items"]] == [999, 998, 997]
    assert by_metric["items"][0]["train_metric"] == pytest.approx(0.999)
    assert get("/clients", metric="mae")["items"][0]["train_metric"] is None
    by_loss = sorted(range(CLIENTS), key=lambda c: (-train_loss(c, 1), -c))
    seen = []
    for offset in range(0, CLIENTS, 200):
        page = get("/clients", round=1, sort="train_loss", order="desc", limit=200, offset=offset)
        assert page["total"] == CLIENTS and page["round"] == 1
        seen += [row["client"] for row in page["items"]]
    assert seen == by_loss  # every client once, in loss order, across pages
    assert get("/clients", offset=CLIENTS)["items"] == []

    # The partition's label mix: 100 bars sampled over the 1,000 clients, each its own mix.
    mix = s.LabelMix.model_validate(get("/clients/label-mix")).model_dump()
    assert mix["clients_total"] == CLIENTS and mix["sampled"] and len(mix["bars"]) == 100
    assert mix["labels"] == [str(k) for k in range(10)] and mix["other_labels"] == 0
    assert mix["bars"][0]["client"] == 0 and mix["bars"][-1]["client"] == CLIENTS - 1
    assert mix["single_label_clients"] == CLIENTS // 5
    for bar in mix["bars"]:
        assert dict(zip(mix["labels"], bar["counts"], strict=True)) == {
            k: label_counts(bar["client"]).get(k, 0) for k in mix["labels"]}
    few = get("/clients/label-mix", bars=5, labels=2)
    assert [b["client"] for b in few["bars"]] == [0, 250, 500, 749, 999]
    assert len(few["labels"]) == 2 and few["other_labels"] == 8
    assert all(sum(b["counts"]) + b["other"] == b["train_examples"] for b in few["bars"])

    # The page's own routes (behind its login) answer the same bodies.
    page = f"/projects/{pid}/experiments/{big_run}"
    assert client.get(page + "/clients/summary.json").get_json() == get("/clients/summary")
    assert client.get(page + "/clients.json?sort=train_loss&order=desc").get_json() == get(
        "/clients", sort="train_loss", order="desc")
    assert client.get(page + "/clients/label-mix.json").get_json() == get("/clients/label-mix")
    # Out-of-range values from the page are brought into range, not obeyed.
    assert len(client.get(page + "/clients.json?limit=100000").get_json()["items"]) == 200

    _assert_page_and_stream_carry_no_row_per_client(ctx, big_run, client)


def _assert_page_and_stream_carry_no_row_per_client(ctx, big_run, client):
    from flautim.models import ExperimentEvent, db

    pid = ctx["project_id"]
    html = client.get(f"/projects/{pid}/experiments/{big_run}").get_data(as_text=True)
    assert 'data-testid="clients-section"' in html and "js/clients.js" in html
    assert "client-999" not in html and len(html) < 60_000

    # The catch-up of a page opened on the finished run: no client report, and the
    # partition summary without its 1,000 entries.
    response = client.get(f"/projects/{pid}/experiments/{big_run}/stream", buffered=False)
    chunks = iter(response.response)
    next(chunks)
    body = next(chunks).decode()
    response.close()
    events = [json.loads(data) for data in re.findall(r"^event: event\ndata: (.*)$", body, re.M)]
    types = [e["type"] for e in events]
    assert "client_train" not in types and "client_evaluate" not in types
    assert types.count("aggregated") == 2 * ROUNDS and types[-1] == "run_finished"
    partition = next(e for e in events if e["type"] == "partition_summary")["payload"]
    assert "clients" not in partition and partition["clients_total"] == CLIENTS
    assert len(body) < 20_000
    # They are all stored, and the events API still serves them.
    stored = db.session.scalars(select(ExperimentEvent.type).where(ExperimentEvent.experiment_id == big_run)).all()
    assert stored.count("client_train") == CLIENTS * ROUNDS


def test_live_stream_skips_client_reports(app, ctx, live_server, tmp_path):
    import threading

    from tests.test_experiments_live import SseReader, browser_session

    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    lines = list(thousand_client_lines(clients=50))
    feed_run(app, exp_id, tmp_path, lines[:3], finish=None)
    session = browser_session(live_server.url, "dona@example.org")
    response = session.get(f"{live_server.url}/projects/{pid}/experiments/{exp_id}/stream", stream=True,
                           timeout=(10, 120))
    reader = SseReader(response)
    reader.until(lambda m: m["event"] == "state")
    feeder = threading.Thread(target=feed_run, args=(app, exp_id, tmp_path, lines[3:]))
    feeder.start()
    live = reader.until(lambda m: m["event"] == "end")
    feeder.join(120)
    response.close()
    types = [m["data"]["type"] for m in live if m["event"] == "event"]
    assert types == ["aggregated", "aggregated", "round_started", "aggregated", "aggregated", "run_finished"], types


def test_client_routes_check_input_and_tenant(app, ctx, small_run, client, make_token):
    pid = ctx["project_id"]
    api = f"/api/v1/projects/{pid}/experiments/{small_run}"
    headers = bearer(make_token(ctx["owner"]))
    for path, params, field in (
        ("/clients", {"sort": "password"}, "sort"),
        ("/clients", {"limit": 0}, "limit"),
        ("/clients", {"round": -1}, "round"),
        ("/clients", {"metric": "m" * 65}, "metric"),
        ("/clients/summary", {"phase": "central"}, "phase"),
        ("/clients/summary", {"limit": 10_000}, "limit"),
        ("/clients/label-mix", {"bars": 100_000}, "bars"),
    ):
        response = client.get(api + path, query_string=params, headers=headers)
        assert response.status_code == 400, (path, params)
        assert response.get_json()["error"]["field"] == field
    outsider = bearer(make_token(ctx["outsider"]))
    for path in ("/clients", "/clients/summary", "/clients/label-mix"):
        assert client.get(api + path, headers=outsider).status_code == 404
        assert client.get(api + path).status_code == 401
    from tests.experiments_support import switch_user

    switch_user(client, "fora@example.org")
    for path in ("/clients.json", "/clients/summary.json", "/clients/label-mix.json"):
        assert client.get(f"/projects/{pid}/experiments/{small_run}{path}").status_code == 404


def test_hostile_and_small_client_reports(app, ctx, tmp_path, client):
    """A report with a client id or example count that is not a plain number keeps its
    event and stores what it can; quartiles of a few clients interpolate between ranks."""
    from flautim.models import ClientResult, ExperimentEvent, db

    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    losses = [0.5, 4.0, 1.0, 2.0]
    lines = [("server", event_line("client_train", round=1, client=c, loss=loss, metrics={"mae": 2 * loss},
                                   examples=c + 1, duration_s=0.1)) for c, loss in enumerate(losses)]
    lines += [
        ("server", event_line("client_train", round=1, client="seven", loss=9.0, metrics={}, examples=1, duration_s=0.1)),
        ("server", event_line("client_train", round=1, client=4, loss="high", metrics={}, examples=10**30,
                              duration_s=0.1)),
        ("server", event_line("partition_summary", method="iid", clients=[
            "nonsense", {"client": "x"}, {"client": 1, "label_counts": {"a": -5, "b": 3, "--1": 2}},
            {"client": 0, "train_examples": 7, "label_counts": []}])),
    ]
    feed_run(app, exp_id, tmp_path, lines, finish=None)
    rows = db.session.scalars(select(ClientResult).where(ClientResult.experiment_id == exp_id)
                              .order_by(ClientResult.client)).all()
    assert [r.client for r in rows] == [0, 1, 2, 3, 4]
    assert rows[-1].loss is None and rows[-1].examples is None
    assert db.session.scalar(select(ExperimentEvent.id).where(
        ExperimentEvent.experiment_id == exp_id, ExperimentEvent.type == "client_train").offset(5)) is not None

    page = f"/projects/{pid}/experiments/{exp_id}"
    spread = client.get(page + "/clients/summary.json").get_json()["rounds"][0]
    assert spread["clients"] == 5 and spread["loss"]["count"] == 4
    assert _spread_numbers(spread["loss"]) == pytest.approx(_quartiles(losses))
    assert spread["examples"]["count"] == 4 and spread["examples"]["total"] == 10
    table = client.get(page + "/clients.json?sort=train_loss").get_json()
    assert [row["client"] for row in table["items"]] == [0, 2, 3, 1, 4]  # no loss: last
    # A regression run's table shows its own metric.
    table = client.get(page + "/clients.json?metric=mae&sort=train_metric&order=desc").get_json()
    assert table["metric"] == "mae"
    assert [(row["client"], row["train_metric"]) for row in table["items"]] == [
        (1, 8.0), (3, 4.0), (2, 2.0), (0, 1.0), (4, None)]
    mix = client.get(page + "/clients/label-mix.json").get_json()
    assert mix["clients_total"] == 2 and mix["labels"] == ["--1", "b"]  # "a" held no example
    assert [b["client"] for b in mix["bars"]] == [0, 1] and mix["bars"][0]["train_examples"] == 7
