"""Diagnoses where the user reads them: Saídas' banners and the API, in pt-BR and English,
from recorded runs stored by the worker's real ingest."""

from __future__ import annotations

import json

import pytest

from flautim.fl.events import EVENT_PREFIX
from flautim.worker.ingest import Ingestor
from tests.api.conftest import bearer
from tests.conftest import login
from tests.worker.test_ingest_diagnosis import recorded


@pytest.fixture
def project(make_user, make_project):
    owner = make_user("dona@example.org")
    outsider = make_user("fora@example.org")
    return {"owner": owner, "outsider": outsider, "id": make_project("Federado", owner),
            "other": make_project("Outro", outsider)}


def ingested(app, experiment_id: int, tmp_path, name: str) -> None:
    ingestor = Ingestor(app.extensions["flautim_config"], experiment_id, 1, tmp_path, redis_client=None)
    for event in recorded(name):
        source = "prepare" if event["type"] == "partition_summary" else "server"
        ingestor.line(source, "stdout", EVENT_PREFIX + json.dumps(event))
    ingestor.close()


def test_saidas_shows_a_banner_per_diagnosis_with_its_round_and_hint(app, client, project, seed_experiment, tmp_path):
    experiment = seed_experiment(project["id"], rounds=5, logs=0)
    ingested(app, experiment, tmp_path, "diverging.jsonl")
    login(client, "dona@example.org")
    base = f"/projects/{project['id']}/experiments/{experiment}"
    page = client.get(base).get_data(as_text=True)
    assert f'data-url="{base}/diagnoses"' in page and "js/diagnoses.js" in page
    banners = client.get(base + "/diagnoses").get_data(as_text=True)
    assert banners.count('data-testid="diagnosis"') == 2
    assert 'data-kind="divergence"' in banners and 'data-kind="stuck_at_chance"' in banners
    assert "O treino está divergindo" in banners and "desde a rodada 1" in banners
    assert "Diminua learning_rate" in banners
    assert 'data-help="configuracao-de-hiperparametros"' in banners
    assert banners.count('href="/help/faq#configuracao-de-hiperparametros"') == 2


def test_a_healthy_run_shows_no_banner(app, client, project, seed_experiment, tmp_path):
    experiment = seed_experiment(project["id"], rounds=10, logs=0)
    ingested(app, experiment, tmp_path, "mnist-healthy.jsonl")
    login(client, "dona@example.org")
    banners = client.get(f"/projects/{project['id']}/experiments/{experiment}/diagnoses").get_data(as_text=True)
    assert "diagnosis" not in banners


def test_the_api_lists_diagnoses_in_the_requests_language(app, client, project, seed_experiment, make_token, tmp_path):
    experiment = seed_experiment(project["id"], rounds=4, logs=0)
    ingested(app, experiment, tmp_path, "one-class-per-client.jsonl")
    owner = bearer(make_token(project["owner"]))
    url = f"/api/v1/projects/{project['id']}/experiments/{experiment}/diagnoses"
    portuguese = client.get(url, headers=owner).json["items"]
    english = client.get(url, headers={**owner, "Accept-Language": "en"}).json["items"]
    assert [(d["kind"], d["code"], d["round"]) for d in english] == [
        ("heterogeneity", "diagnosis.heterogeneity.partition", None), ("stuck_at_chance", "diagnosis.stuck_at_chance", 1)]
    heterogeneity = english[0]
    assert heterogeneity["title"] == "Highly heterogeneous data across clients"
    assert heterogeneity["message"].startswith("10 of 10 clients hold 90% or more")
    assert "FedProx" in heterogeneity["hint"] and heterogeneity["help"] == "heterogeneidade-de-dados"
    assert heterogeneity["help_url"].endswith("/help/faq#heterogeneidade-de-dados")
    assert portuguese[0]["title"] == "Dados muito heterogêneos entre os clientes"
    assert portuguese[1]["message"].startswith("Desde a rodada 1 a acurácia")
    outsider = bearer(make_token(project["outsider"]))
    assert client.get(url, headers=outsider).status_code == 404


def test_a_stored_payload_that_is_not_a_diagnosis_is_left_out(app, client, project, seed_experiment, make_token):
    from flautim.models import ExperimentEvent, db

    experiment = seed_experiment(project["id"], rounds=1, logs=0)
    with app.app_context():
        for payload in ({"kind": "nonsense"}, {"kind": "overfitting", "round": "x", "params": [1]},
                        {"kind": "overfitting", "code": "diagnosis.overfitting", "params": {"round": "<b>"}}):
            db.session.add(ExperimentEvent(experiment_id=experiment, attempt=1, type="diagnosis", payload=payload))
        db.session.commit()
    owner = bearer(make_token(project["owner"]))
    items = client.get(f"/api/v1/projects/{project['id']}/experiments/{experiment}/diagnoses", headers=owner).json["items"]
    assert [(d["kind"], d["round"], d["params"]) for d in items] == [
        ("overfitting", None, {}), ("overfitting", None, {"round": "<b>"})]
    # No template fits them: the title and no made-up text (the params do not fill it).
    assert [(d["title"], d["message"]) for d in items] == [("Sobreajuste (overfitting)", "")] * 2


def test_an_ignored_hyperparameter_is_named_with_its_suggestion_and_the_events_api_renders_it(
        app, client, project, seed_experiment, make_token, tmp_path):
    from flautim.fl.events import make_event

    experiment = seed_experiment(project["id"], rounds=1, logs=0)
    warning = make_event("warning", message="`dirichlet_alpha` was read neither ...", hint="", where="hyperparameters.py:4",
                         code="hyperparameters.ignored_key", help="configuracao-de-hiperparametros",
                         params={"key": "dirichlet_alpha", "where": "hyperparameters.py:4",
                                 "suggestion": 'partitioning_options = {"alpha": 1.0}'})
    ingestor = Ingestor(app.extensions["flautim_config"], experiment, 1, tmp_path, redis_client=None)
    ingestor.line("server", "stdout", EVENT_PREFIX + json.dumps(warning))
    ingestor.close()
    owner = {**bearer(make_token(project["owner"])), "Accept-Language": "en"}
    base = f"/api/v1/projects/{project['id']}/experiments/{experiment}"
    (diagnosis,) = client.get(base + "/diagnoses", headers=owner).json["items"]
    assert diagnosis["title"] == "Ignored hyperparameter, possibly misspelled"
    assert diagnosis["message"] == (
        "hyperparameters.py:4: `dirichlet_alpha` was read neither by the platform nor by your code: the run ignored it")
    assert diagnosis["hint"] == 'did you mean `partitioning_options = {"alpha": 1.0}`?'
    events = client.get(base + "/events", headers=owner).json["items"]
    (event,) = [e for e in events if e["type"] == "diagnosis"]
    assert event["message"]["text"] == diagnosis["message"] and event["message"]["translated"]


def test_flautim_submit_prints_diagnoses_as_the_api_rendered_them(app, client, project, seed_experiment, make_token,
                                                                   tmp_path):
    import io

    from flautim.api_client.progress import ProgressView

    experiment = seed_experiment(project["id"], rounds=5, logs=0)
    ingested(app, experiment, tmp_path, "diverging.jsonl")
    owner = bearer(make_token(project["owner"]))
    events = client.get(f"/api/v1/projects/{project['id']}/experiments/{experiment}/events?limit=5000",
                        headers=owner).json["items"]
    out = io.StringIO()
    view = ProgressView(out)
    for event in events:
        view.feed(event)
    text = out.getvalue()
    assert "diagnóstico: A loss de treino chegou a 5920 na rodada 1, 2570 vezes a melhor até então (2.3, rodada 0)." in text
    assert "  o que tentar: Diminua learning_rate" in text
    assert "diagnóstico: Desde a rodada 1 a acurácia (accuracy) fica em 0.1" in text
