"""'Comparar com treino centralizado' in a real browser: the button on a finished experiment
queues the child run (the page's fetch with its CSRF token), and once the child's results
arrive Saídas overlays both curves and states the gap. A screenshot goes to test-artifacts/.
The child's run is fed through the worker's Ingestor (its real run: tests/worker/
test_baseline_run.py)."""

from __future__ import annotations

import pytest

from tests.conftest import ARTIFACTS, PASSWORD
from tests.experiments_support import event_line, feed_run, scripted_run_lines
from tests.worker.bundles import store_experiment, write_bundle

pytestmark = pytest.mark.browser


def _centralized_run(rounds: int = 3):
    for r in range(1, rounds + 1):
        accuracy, loss = 0.45 + r * 0.1, 0.9 / r
        for phase in ("train", "evaluate"):
            yield "server", event_line("aggregated", round=r, phase=phase, loss=loss, metrics={"accuracy": accuracy})
        yield "server", event_line("central_evaluate", round=r, loss=loss, metrics={"accuracy": accuracy})
    yield "server", event_line("run_finished", status="completed", duration_s=2.0, rounds_completed=rounds)


def test_the_baseline_button_and_the_overlay(app, live_server, page, make_user, make_project, tmp_path):
    from playwright.sync_api import expect

    from flautim.models import Experiment, ExperimentKind, ExperimentState, db

    owner = make_user("ana@example.org")
    project_id = make_project("P", owner)
    parent_id = store_experiment(app, write_bundle(tmp_path / "bundle"), project_id, owner, name="Federado")
    with app.app_context():
        parent = db.session.get(Experiment, parent_id)
        for step in ("queued", "preparing", "running"):
            parent.transition(ExperimentState(step))
        db.session.commit()

    base = live_server.url
    page.goto(base + "/auth/login")
    page.get_by_label("Email", exact=True).fill("ana@example.org")
    page.get_by_label("Senha", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Entrar").click()
    page.goto(f"{base}/projects/{project_id}/experiments/{parent_id}")

    # Running: nothing to compare yet. The button appears when the live stream says it ended.
    button = page.get_by_test_id("baseline-start")
    expect(page.get_by_test_id("chart-loss")).to_be_visible()
    expect(button).to_be_hidden()
    feed_run(app, parent_id, tmp_path / "parent-out", scripted_run_lines(tmp_path / "parent-out"))
    expect(button).to_have_text("Comparar com treino centralizado", timeout=20_000)
    expect(button).to_be_visible()
    button.click()
    expect(page.get_by_test_id("baseline-status")).to_contain_text("Federado · centralizado")
    expect(button).to_be_hidden()  # one at a time
    with app.app_context():
        child = db.session.query(Experiment).filter_by(parent_id=parent_id).one()
        assert child.kind == ExperimentKind.CENTRALIZED_BASELINE and child.state == ExperimentState.QUEUED
        child_id = child.id
        for step in ("preparing", "running"):
            child.transition(ExperimentState(step))
        db.session.commit()
    expect(page.get_by_test_id("baseline-gap")).to_contain_text("ainda não terminou")

    feed_run(app, child_id, tmp_path / "child-out", _centralized_run())
    # The page looks again every few seconds while the child runs.
    expect(page.get_by_test_id("baseline-gap")).to_have_text(
        "federado atinge 93% da acurácia centralizada", timeout=20_000
    )
    chart = page.get_by_test_id("baseline-chart-metric")
    expect(chart).to_have_attribute("data-metric", "accuracy")
    expect(chart.locator('[data-series="federated"] circle')).to_have_count(4)  # rounds 0-3
    expect(chart.locator('[data-series="centralized"] circle')).to_have_count(3)
    expect(page.get_by_test_id("baseline-chart-loss").locator('[data-series="centralized"] circle')).to_have_count(3)
    expect(button).to_have_text("Executar o treino centralizado de novo")
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_test_id("baseline").screenshot(path=str(ARTIFACTS / "baseline-overlay.png"))
    page.screenshot(path=str(ARTIFACTS / "baseline-overlay-page.png"), full_page=True)

    # The child's page says what it is and links back; the list marks it.
    page.get_by_test_id("baseline-status").get_by_role("link").click()
    expect(page.get_by_test_id("baseline-of")).to_contain_text("Treino centralizado de referência")
    page.goto(f"{base}/projects/{project_id}/experiments")
    expect(page.get_by_test_id("baseline-badge")).to_have_count(1)
