"""'Comparar com treino centralizado': the child run's settings, who may start it, one at a
time, and the overlay and gap it adds to Saídas (pages and API). The run itself through the
real worker: tests/worker/test_baseline_run.py."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from flautim.fl.hyperparameters import parse_hyperparameters
from flautim.models import (
    Experiment,
    ExperimentKind,
    ExperimentState,
    HyperparameterFile,
    Project,
    db,
)
from flautim.object_store import store_for
from tests.api.conftest import bearer
from tests.conftest import csrf_token_from
from tests.experiments_support import (
    HYPERPARAMETERS,
    event_line,
    feed_run,
    make_experiment,
    scripted_run_lines,
    setup_project,
    switch_user,
    upload_mnist_assets,
)


@pytest.fixture
def project(make_user, make_project, client, db_session):
    return setup_project(make_user, make_project, client)


@pytest.fixture
def parent(app, client, project, tmp_path):
    """A succeeded 2-client MNIST experiment with the scripted run's curves."""
    ids = upload_mnist_assets(client, project["project_id"])
    experiment_id = make_experiment(project["project_id"], ids, name="Federado", state="running")
    feed_run(app, experiment_id, tmp_path / "parent-out", scripted_run_lines(tmp_path / "parent-out"))
    return experiment_id


@pytest.fixture
def make_token(app):
    """make_token(user_id) -> the secret of a new personal access token (the real token code)."""
    from flautim.models import User
    from flautim.web.api.tokens import create_token

    def factory(user_id: int) -> str:
        return create_token(db.session.get(User, user_id), "t")[1]

    return factory


def _csrf(client, project_id: int, experiment_id: int) -> str:
    return csrf_token_from(client.get(f"/projects/{project_id}/experiments/{experiment_id}").get_data(as_text=True))


def _start(client, project_id: int, experiment_id: int, csrf: str | None = None):
    headers = {"Accept": "application/json"}
    if csrf is not None:
        headers["X-CSRFToken"] = csrf
    return client.post(f"/projects/{project_id}/experiments/{experiment_id}/baseline", headers=headers)


def _children(experiment_id: int) -> list[Experiment]:
    db.session.expire_all()
    return list(db.session.scalars(select(Experiment).where(Experiment.parent_id == experiment_id)))


def test_the_baseline_is_a_queued_child_with_one_client_holding_all_the_data(app, client, project, parent):
    pid = project["project_id"]
    r = _start(client, pid, parent, _csrf(client, pid, parent))
    assert r.status_code == 202, r.get_data(as_text=True)
    body = r.get_json()
    [child] = _children(parent)
    assert body["baseline"]["id"] == child.id and body["baseline"]["state"] == "queued"
    assert body["can_start"] is False  # one at a time
    assert child.kind == ExperimentKind.CENTRALIZED_BASELINE and child.state == ExperimentState.QUEUED
    parent_row = db.session.get(Experiment, parent)
    assert (child.dataset_id, child.model_code_id) == (parent_row.dataset_id, parent_row.model_code_id)
    assert child.hyperparameter_file_id != parent_row.hyperparameter_file_id
    assert child.rounds_total == 3 and child.job_id is not None  # handed to the queue

    # What the worker will give the runtime: the parent's file, then the baseline's settings,
    # which the runtime reads last. Same rounds and local epochs, one client, all the data.
    hyper = db.session.get(HyperparameterFile, child.hyperparameter_file_id)
    text = store_for(app.extensions["flautim_config"]).read_bytes(f"{hyper.storage_path}/hyperparameters.py").decode()
    assert text.startswith(HYPERPARAMETERS.decode())
    run = parse_hyperparameters(text)
    parent_run = parse_hyperparameters(HYPERPARAMETERS.decode())
    assert run.num_clients == 1 and parent_run.num_clients == 2
    assert (run.rounds, run.local_epochs, run.batch_size, run.learning_rate, run.seed) == (
        parent_run.rounds, parent_run.local_epochs, parent_run.batch_size, parent_run.learning_rate, parent_run.seed)
    assert (run.partitioning, run.fraction_fit, run.fraction_evaluate, run.strategy) == ("iid", 1.0, 1.0, "FedAvg")
    assert hyper.values["num_clients"] == 1 and hyper.values["rounds"] == 3

    # Marked in the list; its page says what it is and links back.
    listing = client.get(f"/projects/{pid}/experiments").get_data(as_text=True)
    assert listing.count('data-testid="baseline-badge"') == 1
    page = client.get(f"/projects/{pid}/experiments/{child.id}").get_data(as_text=True)
    assert 'data-testid="baseline-of"' in page and f"/experiments/{parent}\"" in page
    assert 'id="baseline-start"' not in page  # no baseline of a baseline


def test_one_baseline_at_a_time_and_a_finished_one_runs_again(app, client, project, parent, tmp_path):
    pid = project["project_id"]
    csrf = _csrf(client, pid, parent)
    assert _start(client, pid, parent, csrf).status_code == 202
    second = _start(client, pid, parent, csrf)  # the double click
    assert second.status_code == 409
    assert "já está na fila ou em execução" in second.get_json()["error"]["message"]
    [child] = _children(parent)
    assert child.attempt == 1

    feed_run(app, child.id, tmp_path / "child-out", [], finish=None)
    for step in ("preparing", "running", "succeeded"):
        child.transition(ExperimentState(step))
    db.session.commit()
    assert client.get(f"/projects/{pid}/experiments/{parent}/baseline.json").get_json()["can_start"] is True
    again = _start(client, pid, parent, csrf)
    assert again.status_code == 202
    [same] = _children(parent)
    assert same.id == child.id and same.attempt == 2 and same.state == ExperimentState.QUEUED


def test_concurrent_presses_make_one_child_and_queue_it_once(app, project, parent, make_user):
    """Two requests at the same moment (two tabs): one child, one attempt, one refusal."""
    import threading

    from flask import g

    from flautim.models import User
    from flautim.web.experiments import baseline

    results, barrier = [], threading.Barrier(2)

    def press():
        with app.test_request_context():
            project_row = db.session.get(Project, project["project_id"])
            user = db.session.get(User, project["owner"])
            experiment = db.session.get(Experiment, parent)
            g.pop("_login_user", None)
            barrier.wait()
            try:
                baseline.start_baseline(project_row, user, experiment)
                results.append("started")
            except Exception as exc:  # noqa: BLE001 - the refusal is what is counted
                results.append(type(exc).__name__)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=press) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == ["UserFacingError", "started"]
    [child] = _children(parent)
    assert child.attempt == 1 and child.state == ExperimentState.QUEUED


def test_who_may_start_it_and_when(app, client, project, parent, make_token):
    pid = project["project_id"]
    # No CSRF token: refused before anything is made.
    assert _start(client, pid, parent).status_code == 400
    assert _children(parent) == []

    # A viewer sees the comparison but not the button, and is refused.
    switch_user(client, "leitor@example.org")
    assert client.get(f"/projects/{pid}/experiments/{parent}/baseline.json").get_json()["can_start"] is False
    assert _start(client, pid, parent, _csrf(client, pid, parent)).status_code == 403
    # An outsider does not learn the experiment exists.
    switch_user(client, "fora@example.org")
    assert client.get(f"/projects/{pid}/experiments/{parent}/baseline.json").status_code == 404
    assert _start(client, pid, parent, csrf_token_from(client.get("/projects/").get_data(as_text=True))).status_code == 404
    headers = bearer(make_token(project["outsider"]))
    assert client.post(f"/api/v1/projects/{pid}/experiments/{parent}/baseline", headers=headers).status_code == 404
    assert _children(parent) == []

    # The owner: only a succeeded, federated experiment, and not on an archived project.
    switch_user(client, "dona@example.org")
    running = db.session.get(Experiment, parent)
    running.state = ExperimentState.RUNNING
    db.session.commit()
    r = _start(client, pid, parent, _csrf(client, pid, parent))
    assert r.status_code == 409 and "concluído" in r.get_json()["error"]["message"]
    running.state = ExperimentState.SUCCEEDED
    db.session.commit()
    owner_api = bearer(make_token(project["owner"]))
    viewer_api = bearer(make_token(project["viewer"]))
    assert client.post(f"/api/v1/projects/{pid}/experiments/{parent}/baseline", headers=viewer_api).status_code == 403
    project_row = db.session.get(Project, pid)
    from flautim.models import utcnow

    project_row.archived_at = utcnow()
    db.session.commit()
    assert client.post(f"/api/v1/projects/{pid}/experiments/{parent}/baseline", headers=owner_api).status_code == 409
    assert _children(parent) == []
    project_row.archived_at = None
    db.session.commit()
    r = client.post(f"/api/v1/projects/{pid}/experiments/{parent}/baseline", headers=owner_api)
    assert r.status_code == 202, r.get_data(as_text=True)
    child_id = r.get_json()["baseline"]["id"]
    assert r.get_json()["baseline"]["kind"] == "centralized_baseline"
    assert r.get_json()["baseline"]["parent_id"] == parent
    # A baseline of the baseline is refused.
    child = db.session.get(Experiment, child_id)
    child.state = ExperimentState.SUCCEEDED
    db.session.commit()
    r = client.post(f"/api/v1/projects/{pid}/experiments/{child_id}/baseline", headers=owner_api)
    assert r.status_code == 409 and "já é um treino centralizado" in r.get_json()["error"]["message"]


@pytest.mark.parametrize("config_overrides", [{"QUOTA_QUEUED_PER_PROJECT": 0}])
def test_the_quotas_refuse_it_before_anything_is_made(app, client, project, parent, config_overrides):
    pid = project["project_id"]
    hyper_files = db.session.scalar(select(func.count(HyperparameterFile.id)))
    r = _start(client, pid, parent, _csrf(client, pid, parent))
    assert r.status_code == 409
    assert "Limite de experimentos na fila" in r.get_json()["error"]["message"]
    assert _children(parent) == []
    assert db.session.scalar(select(func.count(HyperparameterFile.id))) == hyper_files


def _child_run(rounds: int, loss: list[float], accuracy: list[float] | None, mae: bool = True):
    for r in range(1, rounds + 1):
        metrics = {"accuracy": accuracy[r - 1]} if accuracy else {"mae": loss[r - 1] / 2} if mae else {}
        yield "server", event_line("aggregated", round=r, phase="train", loss=loss[r - 1], metrics=metrics)
        yield "server", event_line("aggregated", round=r, phase="evaluate", loss=loss[r - 1], metrics=metrics)
        yield "server", event_line("central_evaluate", round=r, loss=loss[r - 1], metrics=metrics)
    yield "server", event_line("run_finished", status="completed", duration_s=2.0, rounds_completed=rounds)


def _finish_child(app, client, pid, parent, tmp_path, lines):
    r = _start(client, pid, parent, _csrf(client, pid, parent))
    assert r.status_code == 202, r.get_data(as_text=True)
    child_id = r.get_json()["baseline"]["id"]
    child = db.session.get(Experiment, child_id)
    child.transition(ExperimentState.PREPARING)
    child.transition(ExperimentState.RUNNING)
    db.session.commit()
    feed_run(app, child_id, tmp_path / "child-out", lines)
    return child_id


def test_the_overlay_and_the_gap_on_the_accuracy(app, client, project, parent, tmp_path, make_token):
    pid = project["project_id"]
    # The parent's central accuracy ends at 0.7 (scripted run); the baseline's at 0.75.
    child_id = _finish_child(app, client, pid, parent, tmp_path,
                             _child_run(3, [0.9, 0.5, 0.3], [0.55, 0.7, 0.75]))
    body = client.get(f"/projects/{pid}/experiments/{parent}/baseline.json").get_json()
    assert body["baseline"]["id"] == child_id and body["baseline"]["state"] == "succeeded"
    assert body["metric"] == "accuracy" and body["series"] == "central"
    assert body["curves"]["accuracy"]["federated"] == [[0, 0.1], [1, pytest.approx(0.5)], [2, pytest.approx(0.6)],
                                                       [3, pytest.approx(0.7)]]
    assert body["curves"]["accuracy"]["centralized"] == [[1, 0.55], [2, 0.7], [3, 0.75]]
    assert body["curves"]["loss"]["centralized"] == [[1, 0.9], [2, 0.5], [3, 0.3]]
    assert body["gap"]["ratio"] == pytest.approx(0.7 / 0.75)
    assert body["gap_text"] == "federado atinge 93% da acurácia centralizada"
    assert body["can_start"] is True

    # A client of the API alone (no page session), asking for English. (The test's app
    # context, which requests share, keeps Flask-Babel's locale: forget it.)
    from flask_babel import refresh

    refresh()
    api = app.test_client().get(f"/api/v1/projects/{pid}/experiments/{parent}/baseline",
                     headers={**bearer(make_token(project["owner"])), "Accept-Language": "en"})
    assert api.status_code == 200
    data = api.get_json()
    assert data["gap"] == body["gap"] and data["curves"] == body["curves"]
    assert data["gap_text"] == "federated reaches 93% of the centralized accuracy"
    assert data["baseline"]["kind"] == "centralized_baseline"


def test_a_loss_only_run_states_the_loss_ratio(app, client, project, tmp_path):
    pid = project["project_id"]
    ids = upload_mnist_assets(client, pid)
    parent = make_experiment(pid, ids, name="Só loss", state="running")
    feed_run(app, parent, tmp_path / "p", _child_run(3, [3.0, 2.0, 1.5], None, mae=False))
    _finish_child(app, client, pid, parent, tmp_path, _child_run(3, [2.0, 1.2, 1.0], None, mae=False))
    body = client.get(f"/projects/{pid}/experiments/{parent}/baseline.json").get_json()
    assert body["metric"] == "loss" and list(body["curves"]) == ["loss"]
    assert body["gap"] == {"metric": "loss", "federated": 1.5, "centralized": 1.0, "ratio": 1.5}
    assert body["gap_text"] == "a loss federada é 1,50× a centralizada"


def test_a_regression_run_states_the_gap_on_its_headline_metric(app, client, project, tmp_path):
    """The headline metric is the one rule's (flautim.headline): a regression run's MAE,
    lower is better, so the gap says how many times the centralized MAE it is."""
    pid = project["project_id"]
    ids = upload_mnist_assets(client, pid)
    parent = make_experiment(pid, ids, name="Regressão", state="running")
    feed_run(app, parent, tmp_path / "p", _child_run(3, [3.0, 2.0, 1.5], None))
    _finish_child(app, client, pid, parent, tmp_path, _child_run(3, [2.0, 1.2, 1.0], None))
    body = client.get(f"/projects/{pid}/experiments/{parent}/baseline.json").get_json()
    assert body["metric"] == "mae" and set(body["curves"]) == {"loss", "mae"}
    assert body["curves"]["mae"]["centralized"] == [[1, 1.0], [2, 0.6], [3, 0.5]]
    assert body["gap"] == {"metric": "mae", "federated": 0.75, "centralized": 0.5, "ratio": 1.5}
    assert body["gap_text"] == "mae federado é 1,50× o centralizado"


def test_the_gap_waits_for_the_baseline_to_succeed(app, client, project, parent):
    pid = project["project_id"]
    assert _start(client, pid, parent, _csrf(client, pid, parent)).status_code == 202
    body = client.get(f"/projects/{pid}/experiments/{parent}/baseline.json").get_json()
    assert body["baseline"]["state"] == "queued" and body["gap"] is None and body["gap_text"] is None
    assert body["curves"]["accuracy"]["centralized"] == []


def test_the_experiment_page_makes_no_query_for_the_baseline(app, client, project, parent):
    """The section is part of the cached panels; its data comes from baseline.json."""
    from sqlalchemy import event

    pid = project["project_id"]
    url = f"/projects/{pid}/experiments/{parent}"
    client.get(url)  # warm the panels' cache
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        page = client.get(url).get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert 'data-testid="baseline"' in page and "js/baseline.js" in page
    assert not [s for s in statements if "parent_id =" in s], statements


def test_the_baseline_settings_win_over_any_spelling_of_the_parents():
    """The parent's file may use the published library's aliases; the appended settings are
    read last and win, and what makes the schedule (rounds, local epochs) is kept."""
    from flautim.web.experiments.baseline import baseline_source

    parent = (
        'num_rounds = 5\nepochs = 2\nclients = 8\nfraction_train = 0.5\npartition = "dirichlet"\n'
        'partitioning_options = {"alpha": 0.3}\nstrategy = "FedProx"\nstrategy_options = {"proximal_mu": 0.1}\n'
        'differential_privacy = {"noise_multiplier": 1.0, "clipping_norm": 1.0}\nlr = 0.05\nmy_dropout = 0.2\n'
    )
    run = parse_hyperparameters(baseline_source(parent))
    assert (run.rounds, run.local_epochs, run.learning_rate, run.extra) == (5, 2, 0.05, {"my_dropout": 0.2})
    assert (run.num_clients, run.fraction_fit, run.fraction_evaluate) == (1, 1.0, 1.0)
    assert (run.partitioning, run.partitioning_options, run.strategy, run.strategy_options) == ("iid", {}, "FedAvg", {})
    assert run.differential_privacy is None and run.warnings == []


@pytest.mark.parametrize(
    ("federated", "centralized"),
    [(None, 0.9), (0.9, None), (0.9, 0.0), (0.9, -1.0), (float("nan"), 0.9), (0.9, float("nan")), (0.9, float("inf"))],
)
def test_no_gap_is_stated_from_missing_or_meaningless_values(federated, centralized):
    from flautim.web.experiments.baseline import gap

    assert gap("accuracy", federated, centralized) is None
    assert gap("accuracy", 0.9, 1.0) == {"metric": "accuracy", "federated": 0.9, "centralized": 1.0, "ratio": 0.9}
