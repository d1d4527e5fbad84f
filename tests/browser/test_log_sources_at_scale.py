"""The Logs tab in a real browser at 1,000 clients (lines stored by the worker's Ingestor):
no option per client; one client picked by its number shows exactly its lines, the ones
older than what the page first loaded too; live lines of other sources stay out; a number
the run does not have is refused with a message; "todas" brings the whole log back."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ARTIFACTS, login_in_browser
from tests.experiments_support import feed_run, make_experiment, setup_project
from tests.test_log_sources_at_scale import CLIENTS, ROUNDS, thousand_client_log

pytestmark = [pytest.mark.browser]


def test_one_client_of_a_thousand_in_the_logs_tab(app, make_user, make_project, client, db_session, live_server,
                                                  page, tmp_path):
    from playwright.sync_api import expect

    ctx = setup_project(make_user, make_project, client)
    exp_id = make_experiment(ctx["project_id"], {}, state="running")
    feed_run(app, exp_id, tmp_path, thousand_client_log(), finish=None)

    login_in_browser(page, live_server.url, "dona@example.org")
    page.goto(f"{live_server.url}/projects/{ctx['project_id']}/experiments/{exp_id}#logs")

    lines = page.locator("#logbox .logline")
    # The stream's catch-up: the newest 2,000 lines only, client 537's first round not among them.
    expect(lines.last).to_contain_text(f"[client {CLIENTS - 1} round {ROUNDS} train]")
    expect(page.locator("#logbox .logline[data-source='client-537']")).to_have_count(ROUNDS - 1)
    expect(page.locator("#logbox .logline[data-source='client-537']").first).to_contain_text("round 2")
    picker = page.get_by_test_id("log-source")
    values = picker.locator("option").evaluate_all("options => options.map(o => o.value)")
    assert values == ["", "server", "prepare", "platform", "clients", "client"]
    expect(picker.locator("#log-all-clients")).to_have_text("todos os clientes (1.000)")

    picker.select_option("client")
    expect(page.locator("#log-client-range")).to_have_text("1.000 clientes, de 0 a 999")
    page.get_by_test_id("log-client").fill("537")
    page.get_by_test_id("log-client").press("Enter")
    expect(lines).to_have_count(ROUNDS)
    assert lines.all_inner_texts() == [
        f"[client-537] [client 537 round {r} train] loss {537 + r / 10:.1f}" for r in range(1, ROUNDS + 1)]

    # Live: only client 537's new line comes in.
    feed_run(app, exp_id, tmp_path, [("client-12", "[client 12 round 4 train] other"), ("server", "round 4 started"),
                                     ("client-537", "[client 537 round 4 train] mine"),
                                     ("client-5370", "[client 5370 round 4 train] a prefix only")], finish=None)
    expect(lines).to_have_count(ROUNDS + 1)
    expect(lines.last).to_have_text("[client-537] [client 537 round 4 train] mine")
    # The text search filters what the choice loaded.
    page.get_by_label("Buscar").fill("round 2")
    expect(page.locator("#logbox .logline:not(.hidden)")).to_have_count(1)
    page.get_by_label("Buscar").fill("")
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#tab-logs").screenshot(path=str(ARTIFACTS / "logs-one-client-of-1000.png"))

    # A client the run does not have: a message, and the lines shown stay.
    page.get_by_test_id("log-client").fill("5000")
    page.locator("#log-client-show").click()
    expect(page.get_by_test_id("log-source-error")).to_have_text(
        "Esta execução não tem linhas do cliente 5000 (ela tem 1.001 clientes, de 0 a 5370).")
    expect(lines).to_have_count(ROUNDS + 1)
    page.get_by_test_id("log-client").fill("quinze")
    page.get_by_test_id("log-client").press("Enter")
    expect(page.get_by_test_id("log-source-error")).to_contain_text("«quinze» não é o número de um cliente")

    # "todas": the whole log's newest lines again, the live ones of every source among them.
    picker.select_option("")
    expect(page.get_by_test_id("log-source-error")).to_be_hidden()
    expect(page.locator("#logbox .logline[data-source='server']").last).to_have_text("[server] round 4 started")
    expect(lines.last).to_contain_text("a prefix only")
    expect(page.get_by_test_id("log-source-note")).to_contain_text("As 2000 linhas mais recentes")
    # The server's source: its lines from the first round on.
    picker.select_option("server")
    expect(lines).to_have_count(ROUNDS + 1)
    expect(lines.first).to_have_text("[server] round 1 started")
    assert not [v for v in picker.locator("option").evaluate_all("options => options.map(o => o.value)")
                if re.fullmatch(r"client-\d+", v)]
