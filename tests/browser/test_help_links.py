"""In Saídas, an error that names a FAQ entry (the event's `help` slug) links to it, in a real
browser; a slug that is not published gets no link."""

from __future__ import annotations

import json

import pytest

from flautim.fl.events import EVENT_PREFIX, make_event
from tests.conftest import ARTIFACTS, PASSWORD
from tests.experiments_support import feed_run, make_experiment

pytestmark = pytest.mark.browser


def _failed_run_lines(help_slug):
    def line(type_, **fields):
        return "server", EVENT_PREFIX + json.dumps(make_event(type_, **fields))

    yield line(
        "run_started",
        experiment="Exp",
        transport="fast",
        clients=2,
        rounds=3,
        strategy="FedAvg",
        hyperparameters={},
    )
    yield line("round_started", round=1)
    yield line(
        "error",
        what="a camada 'fc1' esperava 784 entradas e recebeu 28",
        where="api.py:19",
        hint="confira o tamanho da entrada",
        kind="user_code",
        help=help_slug,
    )
    yield line("run_finished", status="failed", duration_s=1.0, rounds_completed=0)


def test_error_in_saidas_links_to_its_faq_entry(
    app, live_server, page, make_user, make_project, tmp_path
):
    from playwright.sync_api import expect

    owner = make_user("ana@example.org")
    project_id = make_project("P", owner)
    with app.app_context():
        linked = make_experiment(project_id, {}, name="Com ajuda", state="running")
        hostile = make_experiment(project_id, {}, name="Slug estranho", state="running")
    feed_run(
        app,
        linked,
        tmp_path / "a",
        _failed_run_lines("incompatibilidade-de-tamanho-de-tensor"),
        finish="failed",
    )
    feed_run(
        app, hostile, tmp_path / "b", _failed_run_lines("javascript:alert(1)"), finish="failed"
    )

    base = live_server.url
    page.goto(base + "/auth/login")
    page.get_by_label("Email", exact=True).fill("ana@example.org")
    page.get_by_label("Senha", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Entrar").click()

    page.goto(f"{base}/projects/{project_id}/experiments/{hostile}")
    expect(page.get_by_test_id("run-error")).to_contain_text("esperava 784 entradas")
    expect(page.get_by_test_id("error-help")).to_be_hidden()

    page.goto(f"{base}/projects/{project_id}/experiments/{linked}")
    expect(page.get_by_test_id("run-error")).to_contain_text("esperava 784 entradas")
    link = page.get_by_test_id("error-help")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("href", "/help/faq#incompatibilidade-de-tamanho-de-tensor")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "help-error-link.png"), full_page=True)
    link.click()
    expect(page.locator("#incompatibilidade-de-tamanho-de-tensor")).to_contain_text(
        "Incompatibilidade de tamanho de tensor"
    )
    assert page.url.endswith("/help/faq#incompatibilidade-de-tamanho-de-tensor")
    page.screenshot(path=str(ARTIFACTS / "help-faq-entry.png"), full_page=True)
