"""The Logs tab at 1,000 clients (issue 15): the page lists the sources that are not
clients and takes one client by its number; logs.json answers one choice from the whole
log (lines stored by the worker's real Ingestor), and refuses a client the run does not
have with a message that says which clients it has."""

from __future__ import annotations

import re

import pytest
from flask import g

from tests.conftest import csrf_token_from
from tests.experiments_support import feed_run, make_experiment, setup_project, switch_user

CLIENTS = 1000
ROUNDS = 3


def thousand_client_log(clients: int = CLIENTS, rounds: int = ROUNDS):
    """What a run's processes print: the server per round, each client per round (tagged as
    flautim.fl.reporting tags them), and the platform once."""
    yield "platform", "[flautim] starting"
    yield "prepare", "partitions written"
    for r in range(1, rounds + 1):
        yield "server", f"round {r} started"
        for c in range(clients):
            yield f"client-{c}", f"[client {c} round {r} train] loss {c + r / 10:.1f}"


@pytest.fixture
def ctx(app, make_user, make_project, client, db_session):
    return setup_project(make_user, make_project, client)


def _lines(http, pid: int, exp_id: int, **params):
    r = http.get(f"/projects/{pid}/experiments/{exp_id}/logs.json", query_string=params)
    return r.status_code, r.get_json()


def test_summary_lists_other_sources_and_counts_clients():
    from flautim.web.experiments import log_picker

    sources = ["server", "prepare", "platform"] + [f"client-{c}" for c in range(CLIENTS)]
    summary = log_picker.summarize(sources)
    assert summary == log_picker.SourceSummary(("server", "prepare", "platform"), CLIENTS, 0, CLIENTS - 1, (), ())
    # A few clients are each an option, in number order; a group's process counts its range.
    assert log_picker.summarize(["server", "client-10", "client-2"]).listed == ("client-2", "client-10")
    grouped = log_picker.summarize(["server", "clients-0-499", "clients-500-999", "superlink"])
    assert (grouped.sources, grouped.clients, grouped.first, grouped.last, grouped.listed, grouped.groups) == (
        ("server", "superlink"), CLIENTS, 0, CLIENTS - 1, (), ("clients-0-499", "clients-500-999"))
    assert log_picker.summarize(["server"]) == log_picker.SourceSummary(("server",), 0, None, None, (), ())


def test_one_client_of_a_thousand_from_the_whole_log(app, client, ctx, db_session, tmp_path):
    pid = ctx["project_id"]
    exp_id = make_experiment(pid, {}, state="running")
    feed_run(app, exp_id, tmp_path, thousand_client_log(), finish="succeeded")

    status, body = _lines(client, pid, exp_id, client="537")
    assert status == 200 and body["has_more"] is False
    assert [(row["source"], row["line"]) for row in body["items"]] == [
        ("client-537", f"[client 537 round {r} train] loss {537 + r / 10:.1f}") for r in range(1, ROUNDS + 1)]
    # The option of a few clients' page names the source: the same lines.
    assert _lines(client, pid, exp_id, source="client-537")[1]["items"] == body["items"]
    ids = [row["id"] for row in body["items"]]
    assert ids == sorted(ids)

    status, body = _lines(client, pid, exp_id, source="server")
    assert [row["line"] for row in body["items"]] == [f"round {r} started" for r in range(1, ROUNDS + 1)]
    # Every client: the newest lines (2,000 of 3,000), no other source among them.
    status, body = _lines(client, pid, exp_id, clients="all")
    assert status == 200 and body["has_more"] is True and len(body["items"]) == 2000
    assert {row["source"] for row in body["items"]} == {f"client-{c}" for c in range(CLIENTS)}
    assert body["items"][-1]["line"].startswith(f"[client {CLIENTS - 1} round {ROUNDS} ")
    # No choice: the newest lines of the whole log.
    status, body = _lines(client, pid, exp_id)
    assert body["has_more"] is True and body["items"][-1]["source"] == f"client-{CLIENTS - 1}"


def test_a_client_the_run_does_not_have_is_refused_with_a_message(app, client, ctx, db_session, tmp_path):
    pid = ctx["project_id"]
    exp_id = make_experiment(pid, {}, state="running")
    feed_run(app, exp_id, tmp_path, thousand_client_log(rounds=1), finish=None)

    status, body = _lines(client, pid, exp_id, client="5000")
    assert status == 400 and body["field"] == "no_such_client"
    assert body["error"] == "Esta execução não tem linhas do cliente 5000 (ela tem 1.000 clientes, de 0 a 999)."
    status, body = _lines(client, pid, exp_id, client="abc")
    assert status == 400 and body["field"] == "not_a_number"
    assert body["error"] == ("«abc» não é o número de um cliente. Digite um número inteiro "
                             "(esta execução tem 1.000 clientes, de 0 a 999).")
    assert _lines(client, pid, exp_id, client="-3")[1]["field"] == "not_a_number"
    assert _lines(client, pid, exp_id, client="1" * 40)[1]["field"] == "not_a_number"
    status, body = _lines(client, pid, exp_id, source="superlink")
    assert status == 400 and body["error"] == "Esta execução não tem linhas da origem «superlink»."
    # In English for a reader who picked it.
    url = f"/projects/{pid}/experiments/{exp_id}"
    token = csrf_token_from(client.get(url).get_data(as_text=True))
    client.post("/language", data={"csrf_token": token, "locale": "en", "next": url})
    g.pop("_flask_babel", None)  # the tests' app context (and its `g`) outlives a request
    body = _lines(client, pid, exp_id, client="5000")[1]
    assert body["error"] == "This run has no lines from client 5000 (it has 1,000 clients, 0 to 999)."
    # Another project's member gets nothing at all.
    switch_user(client, "fora@example.org")
    assert client.get(f"/projects/{pid}/experiments/{exp_id}/logs.json?client=5").status_code == 404


def test_a_client_in_a_group_process_is_its_tagged_lines(app, client, ctx, db_session, tmp_path):
    """With virtual clients grouped in processes, a group's lines are one source; a client's
    are those it tagged (flautim.fl.reporting), not a client sharing its digits' prefix."""
    pid = ctx["project_id"]
    exp_id = make_experiment(pid, {}, state="running")
    lines = [("server", "round 1 started"),
             ("clients-0-499", "[client 7 round 1 train] mine"),
             ("clients-0-499", "[client 70 round 1 train] not mine"),
             ("clients-0-499", "Traceback (most recent call last):"),
             ("clients-500-999", "[client 7 round 1 train] not from 7's process"),
             ("clients-0-499", "[client 7 round 2 train] mine again")]
    feed_run(app, exp_id, tmp_path, lines, finish=None)
    status, body = _lines(client, pid, exp_id, client="7")
    assert status == 200 and [row["line"] for row in body["items"]] == [
        "[client 7 round 1 train] mine", "[client 7 round 2 train] mine again"]
    assert _lines(client, pid, exp_id, client="999")[0] == 200
    assert _lines(client, pid, exp_id, client="1000")[0] == 400
    # "All the clients" holds the group's untagged lines too.
    assert len(_lines(client, pid, exp_id, clients="all")[1]["items"]) == 5


def test_the_page_has_no_option_per_client_at_a_thousand(app, client, ctx, db_session, tmp_path):
    pid = ctx["project_id"]
    exp_id = make_experiment(pid, {}, state="running")
    feed_run(app, exp_id, tmp_path, thousand_client_log(rounds=1), finish=None)
    page = client.get(f"/projects/{pid}/experiments/{exp_id}").get_data(as_text=True)
    select = page.split('id="log-source"', 1)[1].split("</select>", 1)[0]
    assert re.findall(r'<option value="([^"]*)"', select) == ["", "server", "prepare", "platform", "clients", "client"]
    assert 'data-clients="1000" data-client-first="0"' in select and 'data-client-last="999"' in select
    assert "todos os clientes (1.000)" in select
    assert not re.search(r"client-\d", page)
