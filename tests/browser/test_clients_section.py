"""Saídas' client section in a real browser at 1,000 clients (reports stored by the
worker's Ingestor): the spread per round, one round's clients 50 at a time, sorted by loss
with a click and paged, and the label mix drawn as 100 sampled bars. A screenshot goes to
test-artifacts/."""

from __future__ import annotations

import pytest

from tests.api.test_client_results import CLIENTS, ROUNDS, thousand_client_lines
from tests.conftest import ARTIFACTS, login_in_browser
from tests.experiments_support import feed_run, make_experiment, setup_project, upload_mnist_assets

pytestmark = [pytest.mark.browser]


def test_clients_section_at_a_thousand_clients(app, make_user, make_project, client, db_session, live_server,
                                               page, tmp_path):
    from playwright.sync_api import expect

    ctx = setup_project(make_user, make_project, client)
    ids = upload_mnist_assets(client, ctx["project_id"])
    exp_id = make_experiment(ctx["project_id"], ids, state="running")
    feed_run(app, exp_id, tmp_path, thousand_client_lines(), finish="succeeded")

    login_in_browser(page, live_server.url, "dona@example.org")
    page.goto(f"{live_server.url}/projects/{ctx['project_id']}/experiments/{exp_id}")

    rows = page.locator("#clients-body tr[data-client]")
    expect(rows).to_have_count(50)
    expect(page.get_by_test_id("clients-range")).to_have_text(f"clientes 1–50 de {CLIENTS}")
    expect(page.locator("#clients-spread-body tr[data-round]")).to_have_count(ROUNDS)
    expect(page.locator("#clients-round")).to_have_value(str(ROUNDS))
    # Sorted by the training loss, highest first (two clicks), then the next page.
    sort = page.locator("button.sort[data-sort=train_loss]")
    sort.click()
    expect(page.locator("th[aria-sort=ascending] button[data-sort=train_loss]")).to_have_count(1)
    sort.click()
    expect(page.locator("th[aria-sort=descending] button[data-sort=train_loss]")).to_have_count(1)
    expect(rows.first).to_have_attribute("data-client", "27")  # 27 x 37 = 999 (mod 1000): the highest loss
    page.locator("#clients-next").click()
    expect(page.get_by_test_id("clients-range")).to_have_text(f"clientes 51–100 de {CLIENTS}")
    expect(rows).to_have_count(50)

    mix = page.get_by_test_id("label-mix")
    expect(mix).to_have_attribute("data-bars", "100")
    expect(mix.locator("g.bar")).to_have_count(100)
    expect(page.get_by_test_id("label-mix-note")).to_contain_text(f"100 de {CLIENTS} clientes")
    expect(page.get_by_test_id("distribution")).to_contain_text("rótulo 9")
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_test_id("clients-section").screenshot(path=str(ARTIFACTS / "clients-1000.png"))
