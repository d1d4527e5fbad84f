"""Every metric charted, in a real browser, with a real worker running a regression bundle
of its own (tests/fl/bundles/regression: MSE loss, MAE and MSE metrics, no accuracy) to
completion: Saídas leads with MAE (the checkpoint's best_metric), charts MAE and, through
the picker, MSE; the per-client view draws the spread across clients and a chosen client;
no chart of the finished run is empty. Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "tests" / "fl" / "bundles" / "regression"
USER = ("Rita Regressão", "rita@example.org", "figueira no quintal 12")
RUN_TIMEOUT_MS = 420_000
HAS_POINTS = re.compile(r"^[1-9]")


@pytest.fixture
def config_overrides():
    return {"SANDBOX_BACKEND": "local"}


def _shot(page, step: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"every-metric-{step}.png"), full_page=True)


def _empty_charts(page) -> list[str]:
    """The visible charts with no point drawn."""
    return page.evaluate("""() => Array.from(document.querySelectorAll("svg.chart"))
        .filter(svg => svg.getClientRects().length && svg.getAttribute("data-points") === "0")
        .map(svg => svg.id)""")


def test_a_regression_run_charts_its_mse_and_mae(app, live_server, page, embedded_worker, tmp_path):
    from playwright.sync_api import expect

    base = live_server.url
    page.goto(base + "/")
    page.get_by_role("link", name="Criar conta").first.click()
    page.get_by_label("Nome", exact=True).fill(USER[0])
    page.get_by_label("Email", exact=True).fill(USER[1])
    page.get_by_label("Senha", exact=True).fill(USER[2])
    page.get_by_role("button", name="Criar conta").click()
    page.get_by_role("link", name="Novo projeto").click()
    page.get_by_label("Nome", exact=True).fill("Regressão federada")
    page.get_by_role("button", name="Criar projeto").click()
    expect(page.locator("h1")).to_contain_text("Regressão federada")
    project_url = page.url

    page.locator("#experimentos").get_by_role("link", name="Datasets").click()
    page.get_by_label("Nome", exact=True).fill("Diabetes")
    page.get_by_label("Classe Dataset (.py)").set_input_files(str(BUNDLE / "dataset.py"))
    page.get_by_role("button", name="Enviar").click()
    expect(page.locator("h1")).to_have_text("Diabetes")
    page.get_by_role("link", name="Códigos da API").first.click()
    page.get_by_label("Arquivo .py").set_input_files(str(BUNDLE / "api.py"))
    page.get_by_role("button", name="Enviar").click()
    expect(page.get_by_test_id("source")).to_contain_text("DiabetesRegression")
    page.get_by_role("link", name="Hiperparâmetros").first.click()
    page.get_by_label("Arquivo .py").set_input_files(str(BUNDLE / "hyperparameters.py"))
    page.get_by_role("button", name="Adicionar").click()
    expect(page.locator("h1")).to_have_text("hyperparameters")

    page.goto(project_url)
    page.get_by_role("link", name="Adicionar experimento").click()
    page.get_by_label("Nome do experimento").fill("Diabetes MSE/MAE")
    page.get_by_role("button", name="Revisar").click()
    page.get_by_role("button", name="Executar experimento").click()

    # It runs to completion (the page reloads itself when the run ends).
    expect(page.locator("#experiment")).to_be_visible()
    expect(page.locator("#state-badge .badge")).to_have_attribute("data-state", "succeeded", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Executar de novo")).to_be_visible(timeout=30_000)

    # The headline is MAE, as the checkpoint's best_metric says; lower is better.
    metric_chart = page.get_by_test_id("chart-metric")
    expect(metric_chart).to_have_attribute("data-metric", "mae", timeout=30_000)
    expect(metric_chart).to_have_attribute("data-points", HAS_POINTS)
    expect(page.get_by_test_id("chart-loss")).to_have_attribute("data-points", HAS_POINTS)
    expect(page.locator("#metric-current-label")).to_have_text("mae atual")
    expect(page.locator("#metric-best-label")).to_have_text("melhor mae")
    expect(page.locator("#metric-current")).to_have_text(re.compile(r"^\d"))
    # The clients' table (clients.js) shows the headline metric too.
    expect(page.locator('button.sort[data-sort="evaluate_metric"]')).to_contain_text("mae")
    assert page.locator("#metric-chart figcaption").inner_text().startswith("mae por rodada")
    assert "ccuracy" not in page.locator("#metric-picker").inner_text()
    # Every curve: the train, federated and central series of MAE.
    for series in ("train", "evaluate", "central"):
        assert metric_chart.locator(f'g.series[data-series="{series}"] circle').count() >= 3, series
    assert _empty_charts(page) == []
    _shot(page, "01-mae")

    # MSE through the picker.
    page.get_by_test_id("metric-picker").select_option("mse")
    expect(metric_chart).to_have_attribute("data-metric", "mse")
    expect(metric_chart).to_have_attribute("data-points", HAS_POINTS)
    expect(page.locator("#metric-caption")).to_have_text("mse por rodada")
    _shot(page, "02-mse")

    # Per client on demand: the spread across clients and client 1's curve.
    page.get_by_test_id("client-metric").select_option("mae")
    page.get_by_test_id("client-ids").fill("1")
    page.get_by_test_id("client-show").click()
    clients_chart = page.get_by_test_id("chart-clients")
    expect(clients_chart).to_have_attribute("data-points", HAS_POINTS)
    expect(clients_chart.locator('g.band[data-series="spread"] polygon')).to_have_count(1)
    expect(clients_chart.locator('g.series[data-series="median"] circle')).to_have_count(3)
    expect(clients_chart.locator('g.series[data-series="client-1"] circle')).to_have_count(3)
    assert _empty_charts(page) == []
    _shot(page, "03-clients")

    # A finished run has no empty chart, after a fresh load too.
    page.reload()
    expect(page.get_by_test_id("chart-metric")).to_have_attribute("data-points", HAS_POINTS, timeout=30_000)
    expect(page.get_by_test_id("chart-loss")).to_have_attribute("data-points", HAS_POINTS)
    assert _empty_charts(page) == []
    _shot(page, "04-finished")

    # Compare overlays any metric: this run beside a second regression run (its rows stored
    # by the worker's real Ingestor), MAE first (this run's headline), then MSE.
    from flautim.models import Experiment, db
    from tests.experiments_support import feed_run, make_experiment
    from tests.test_every_metric import regression_run_lines

    project_id, run_id = (int(n) for n in re.search(r"/projects/(\d+)/experiments/(\d+)", page.url).groups())
    with app.app_context():
        first = db.session.get(Experiment, run_id)
        ids = {"dataset_id": first.dataset_id, "model_code_id": first.model_code_id,
               "hyperparameter_file_id": first.hyperparameter_file_id}
        other = make_experiment(project_id, ids, name="Outra regressão", state="running")
    feed_run(app, other, tmp_path, regression_run_lines())
    page.goto(f"{base}/projects/{project_id}/experiments/compare?ids={run_id}&ids={other}")
    compare = page.get_by_test_id("compare-metric")
    expect(compare).to_have_attribute("data-metric", "mae")
    expect(compare).to_have_attribute("data-points", HAS_POINTS)
    page.get_by_test_id("compare-picker").select_option("mse")
    expect(compare).to_have_attribute("data-metric", "mse")
    expect(compare).to_have_attribute("data-points", HAS_POINTS)
    expect(compare.locator("g.series")).to_have_count(2)
    assert _empty_charts(page) == []
    _shot(page, "05-compare")
