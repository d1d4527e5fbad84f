"""Saídas in a real browser: a run's diagnoses appear as banners while the page is open (the
live stream brings them), each with the round it began, what to try and its FAQ link; the
MNIST example's healthy run shows none. Screenshot: test-artifacts/diagnosis-banners.png."""

from __future__ import annotations

import json

import pytest

from flautim.fl.events import EVENT_PREFIX
from tests.conftest import ARTIFACTS, PASSWORD
from tests.experiments_support import feed_run, make_experiment
from tests.worker.test_ingest_diagnosis import recorded

pytestmark = pytest.mark.browser


def _lines(name: str):
    for event in recorded(name):
        source = "prepare" if event["type"] == "partition_summary" else "server"
        yield source, EVENT_PREFIX + json.dumps(event)


def test_diagnoses_appear_live_as_banners_linking_to_the_faq(app, live_server, page, make_user, make_project, tmp_path):
    from playwright.sync_api import expect

    owner = make_user("ana@example.org")
    project_id = make_project("P", owner)
    with app.app_context():
        diverging = make_experiment(project_id, {}, name="Adam a 1.0", state="running")
        healthy = make_experiment(project_id, {}, name="MNIST", state="running")
    feed_run(app, healthy, tmp_path / "healthy", _lines("mnist-healthy.jsonl"))

    base = live_server.url
    page.goto(base + "/auth/login")
    page.get_by_label("Email", exact=True).fill("ana@example.org")
    page.get_by_label("Senha", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Entrar").click()

    page.goto(f"{base}/projects/{project_id}/experiments/{healthy}")
    expect(page.get_by_test_id("chart-loss")).to_be_visible()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("diagnosis")).to_have_count(0)

    # The page is open before the run reports anything: the banners come with the stream.
    page.goto(f"{base}/projects/{project_id}/experiments/{diverging}")
    expect(page.get_by_test_id("diagnoses")).to_be_attached()
    expect(page.get_by_test_id("diagnosis")).to_have_count(0)
    feed_run(app, diverging, tmp_path / "diverging", _lines("diverging.jsonl"))
    banners = page.get_by_test_id("diagnosis")
    expect(banners).to_have_count(2)
    divergence = page.locator('[data-testid="diagnosis"][data-kind="divergence"]')
    expect(divergence).to_contain_text("O treino está divergindo")
    expect(divergence).to_contain_text("desde a rodada 1")
    expect(divergence).to_contain_text("Diminua learning_rate")
    expect(page.locator('[data-testid="diagnosis"][data-kind="stuck_at_chance"]')).to_contain_text(
        "nível do acaso")
    link = divergence.get_by_test_id("diagnosis-help")
    expect(link).to_have_attribute("href", "/help/faq#configuracao-de-hiperparametros")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "diagnosis-banners.png"), full_page=True)
    link.click()
    expect(page).to_have_url(f"{base}/help/faq#configuracao-de-hiperparametros")
