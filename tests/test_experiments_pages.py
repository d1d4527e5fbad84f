"""The experiment pages through the real app: assets, "Adicionar experimento", review, run,
clone, cancel, the experiment page's tabs, downloads, compare, and tenant scoping."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from tests.conftest import csrf_token_from, submit_form
from tests.experiments_support import (
    HYPERPARAMETERS,
    feed_run,
    make_experiment,
    scripted_run_lines,
    setup_project,
    switch_user,
    upload,
    upload_mnist_assets,
)


@pytest.fixture
def ctx(app, make_user, make_project, client, db_session):
    c = setup_project(make_user, make_project, client)
    c["ids"] = upload_mnist_assets(client, c["project_id"])
    return c


def _post(client, url, page):
    return submit_form(client, url, {}, page=page)


def test_assets_are_listed_viewed_downloaded_and_versioned(app, client, ctx, db_session):
    from flautim.models import ModelCode

    pid = ctx["project_id"]
    html = client.get(f"/projects/{pid}/model-code").get_data(as_text=True)
    assert "api.py" in html
    mc_id = ctx["ids"]["model_code_id"]
    page = client.get(f"/projects/{pid}/model-code/{mc_id}").get_data(as_text=True)
    assert page.count("<li><code>") >= 10  # the source, one numbered line each
    download = client.get(f"/projects/{pid}/model-code/{mc_id}/download")
    assert download.status_code == 200
    assert download.data == (Path(__file__).parents[1] / "examples/mnist/api.py").read_bytes()
    # The same content again is the same version; a change is a new one.
    source = (Path(__file__).parents[1] / "examples/mnist/api.py").read_bytes()
    assert upload(client, pid, "model-code", {"file": ("api.py", source)}).status_code == 302
    assert db_session.query(ModelCode).count() == 1
    assert upload(client, pid, "model-code", {"file": ("api.py", source + b"\n# v2\n")}).status_code == 302
    assert db_session.query(ModelCode).count() == 2


def test_dataset_page_shows_inspection_report_and_error(app, client, ctx, db_session):
    from flautim.models import Dataset

    pid, did = ctx["project_id"], ctx["ids"]["dataset_id"]
    assert "em análise" in client.get(f"/projects/{pid}/datasets/{did}").get_data(as_text=True)
    dataset = db_session.get(Dataset, did)
    dataset.inspection_status = "ok"
    dataset.inspection = {"train": {"examples": 4000, "label_counts": {"0": 400, "7": 401}}, "validation": {"examples": 1000}}
    db_session.commit()
    html = client.get(f"/projects/{pid}/datasets/{did}").get_data(as_text=True)
    assert "4000 exemplos" in html and "1000 exemplos" in html and "401" in html
    dataset.inspection_status = "error"
    dataset.inspection = {"what": "train() raised KeyError", "where": "dataset.py:17", "hint": "check the file names"}
    db_session.commit()
    html = client.get(f"/projects/{pid}/datasets/{did}").get_data(as_text=True)
    assert "train() raised KeyError" in html and "dataset.py:17" in html


def test_add_review_and_run_an_experiment(app, client, ctx, db_session):
    from flautim.models import Experiment, ExperimentState

    pid = ctx["project_id"]
    project_page = client.get(f"/projects/{pid}").get_data(as_text=True)
    assert "Adicionar experimento" in project_page
    form = client.get(f"/projects/{pid}/experiments/new").get_data(as_text=True)
    assert "Código da API" in form
    r = submit_form(
        client,
        f"/projects/{pid}/experiments/new",
        {"name": "MNIST 3 rodadas", "description": "teste", **{k: str(v) for k, v in ctx["ids"].items()}},
    )
    assert r.status_code == 302 and r.headers["Location"].endswith("/review")
    review = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Executar experimento" in review and "rounds" in review
    experiment = db_session.scalar(db_session.query(Experiment).statement)
    assert experiment.state == ExperimentState.DRAFT and experiment.rounds_total == 3
    r = _post(client, f"/projects/{pid}/experiments/{experiment.id}/run", r.headers["Location"])
    assert r.status_code == 302
    db_session.refresh(experiment)
    assert experiment.state == ExperimentState.QUEUED and experiment.attempt == 1 and experiment.job_id
    # The job is really on the RQ queue, carrying only the id.
    import redis
    from rq.job import Job

    job = Job.fetch(experiment.job_id, connection=redis.Redis.from_url(app.config["FLAUTIM_REDIS_URL_RESOLVED"]))
    assert job.args[0] == experiment.id
    page = client.get(f"/projects/{pid}/experiments/{experiment.id}").get_data(as_text=True)
    for tab in ("Saídas", "Logs", "Modelos"):
        assert f">{tab}</button>" in page
    assert "Cancelar" in page
    # Cancel a queued run: it stops at once.
    r = _post(client, f"/projects/{pid}/experiments/{experiment.id}/cancel", f"/projects/{pid}/experiments/{experiment.id}")
    db_session.refresh(experiment)
    assert experiment.state == ExperimentState.CANCELLED


def test_inline_bad_hyperparameters_show_the_line_and_create_nothing(app, client, ctx, db_session):
    from flautim.models import Experiment

    pid = ctx["project_id"]
    html = client.get(f"/projects/{pid}/experiments/new").get_data(as_text=True)
    data = {
        "csrf_token": csrf_token_from(html),
        "name": "X",
        "dataset_id": str(ctx["ids"]["dataset_id"]),
        "model_code_id": str(ctx["ids"]["model_code_id"]),
        "hyperparameter_file_id": "",
        "hyperparameters_file": (io.BytesIO(b"rounds = 3\nseed = __import__('os').getpid()\n"), "hp.py"),
    }
    r = client.post(f"/projects/{pid}/experiments/new", data=data, content_type="multipart/form-data")
    assert r.status_code == 400
    assert "hp.py, linha 2" in r.get_data(as_text=True)
    assert db_session.query(Experiment).count() == 0


def test_clone_with_changes_and_rerun(app, client, ctx, db_session, tmp_path):
    from flautim.models import Experiment, ExperimentState, HyperparameterFile

    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], name="Base", state="running")
    feed_run(app, exp_id, tmp_path, scripted_run_lines(tmp_path))
    upload(client, pid, "hyperparameters", {"file": ("hp5.py", HYPERPARAMETERS.replace(b"rounds = 3", b"rounds = 5"))})
    hp5 = db_session.scalar(db_session.query(HyperparameterFile).filter_by(filename="hp5.py").statement)
    form = client.get(f"/projects/{pid}/experiments/new?clone={exp_id}").get_data(as_text=True)
    assert 'value="Base (cópia)"' in form
    r = submit_form(
        client,
        f"/projects/{pid}/experiments/new?clone={exp_id}",
        {"name": "Base 5 rodadas", **{k: str(v) for k, v in ctx["ids"].items()}, "hyperparameter_file_id": str(hp5.id)},
    )
    assert r.status_code == 302
    clone = db_session.scalar(db_session.query(Experiment).filter_by(name="Base 5 rodadas").statement)
    assert clone.cloned_from_id == exp_id and clone.hyperparameter_file_id == hp5.id and clone.rounds_total == 5
    # Re-run the finished one: a new attempt; the page shows the new attempt only.
    r = _post(client, f"/projects/{pid}/experiments/{exp_id}/run", f"/projects/{pid}/experiments/{exp_id}")
    original = db_session.get(Experiment, exp_id)
    db_session.refresh(original)
    assert original.state == ExperimentState.QUEUED and original.attempt == 2


def test_finished_experiment_page_models_logs_and_downloads(app, client, ctx, db_session, tmp_path):
    import torch

    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    feed_run(app, exp_id, tmp_path, scripted_run_lines(tmp_path))
    page = client.get(f"/projects/{pid}/experiments/{exp_id}").get_data(as_text=True)
    assert "concluído" in page and "não isolado" in page
    # The log tab's sources: each once, the server first, "all the clients", then (few of
    # them) each client in order; the pick-by-number choice is there, hidden.
    select = page.split('id="log-source"', 1)[1].split("</select>", 1)[0]
    assert re.findall(r'<option value="([^"]+)"', select) == ["server", "clients", "client-0", "client-1", "client"]
    assert re.search(r'<option value="client" id="log-one-client" hidden disabled>', select)
    models = client.get(f"/projects/{pid}/experiments/{exp_id}/models").get_data(as_text=True)
    assert "final" in models and "melhor" in models and "safetensors" in models
    links = re.findall(r'href="([^"]+/artifacts/\d+)" data-format="(\w+)" data-kind="(\w+)"', models)
    final_pt = next(url for url, fmt, kind in links if fmt == "pytorch" and kind == "final")
    r = client.get(final_pt)
    assert r.status_code == 200
    state = torch.load(io.BytesIO(r.data), weights_only=True)
    assert torch.equal(state["weight"], torch.full((2, 2), 3.0))
    final_st = next(url for url, fmt, kind in links if fmt == "safetensors" and kind == "final")
    from safetensors.torch import load as load_safetensors

    assert torch.equal(load_safetensors(client.get(final_st).data)["weight"], torch.full((2, 2), 3.0))
    logs = client.get(f"/projects/{pid}/experiments/{exp_id}/logs.txt")
    text = logs.get_data(as_text=True)
    assert "attachment" in logs.headers["Content-Disposition"]
    assert "[client-1] client 1 training round 3" in text and "round 2 done" in text
    curves = client.get(f"/projects/{pid}/experiments/{exp_id}/curves.json").get_json()
    assert curves["metrics"]["accuracy"]["central"] == [[0, 0.1], [1, 0.5], [2, 0.6], [3, 0.7]] or [
        round(p[1], 6) for p in curves["metrics"]["accuracy"]["central"]
    ] == [0.1, 0.5, 0.6, 0.7]
    assert [p[0] for p in curves["metrics"]["loss"]["train"]] == [1, 2, 3]


def test_failed_run_shows_error_with_where_and_hint(app, client, ctx, db_session, tmp_path):
    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    feed_run(app, exp_id, tmp_path, scripted_run_lines(tmp_path, fail_at=2), finish="failed")
    page = client.get(f"/projects/{pid}/experiments/{exp_id}").get_data(as_text=True)
    assert "falhou" in page and "bad shape" in page


def test_compare_two_experiments(app, client, ctx, db_session, tmp_path):
    pid = ctx["project_id"]
    a = make_experiment(pid, ctx["ids"], name="A", state="running")
    feed_run(app, a, tmp_path / "a", scripted_run_lines(tmp_path / "a"))
    b = make_experiment(pid, ctx["ids"], name="B", state="running")
    feed_run(app, b, tmp_path / "b", scripted_run_lines(tmp_path / "b", rounds=2))
    html = client.get(f"/projects/{pid}/experiments/compare?ids={a}&ids={b}").get_data(as_text=True)
    assert 'data-testid="compare-table"' in html
    assert "0.7000" in html and "0.6000" in html  # final central accuracy of A (3 rounds) and B (2)
    assert "<code>rounds</code>" in html


def test_other_projects_objects_are_404(app, client, ctx, db_session, tmp_path, make_project):
    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    feed_run(app, exp_id, tmp_path, scripted_run_lines(tmp_path))
    from flautim.models import ModelArtifact

    artifact_id = db_session.scalar(db_session.query(ModelArtifact.id).statement)
    # The owner's other project: ids exist, but not in that project.
    other = make_project("Segundo", ctx["owner"])
    urls = [
        f"/projects/{other}/experiments/{exp_id}",
        f"/projects/{other}/experiments/{exp_id}/stream",
        f"/projects/{other}/experiments/{exp_id}/logs.txt",
        f"/projects/{other}/experiments/{exp_id}/artifacts/{artifact_id}",
        f"/projects/{other}/datasets/{ctx['ids']['dataset_id']}",
        f"/projects/{other}/model-code/{ctx['ids']['model_code_id']}/download",
        f"/projects/{other}/experiments/new?clone={exp_id}",
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    page = f"/projects/{other}/experiments"
    assert _post(client, f"/projects/{other}/experiments/{exp_id}/delete", page).status_code == 404
    assert _post(client, f"/projects/{other}/hyperparameters/{ctx['ids']['hyperparameter_file_id']}/delete", page).status_code == 404
    # A creation form that names another project's assets is refused by field.
    r = submit_form(client, f"/projects/{other}/experiments/new", {"name": "X", **{k: str(v) for k, v in ctx["ids"].items()}})
    assert r.status_code == 400 and "não existe neste projeto" in r.get_data(as_text=True)
    # An outsider sees nothing of the project.
    switch_user(client, "fora@example.org")
    for url in urls[:1] + [f"/projects/{pid}/experiments/{exp_id}", f"/projects/{pid}/experiments/{exp_id}/artifacts/{artifact_id}"]:
        assert client.get(url).status_code == 404, url


def test_viewer_sees_but_cannot_run_or_delete(app, client, ctx, db_session, tmp_path):
    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    feed_run(app, exp_id, tmp_path, scripted_run_lines(tmp_path))
    switch_user(client, "leitor@example.org")
    viewer = client
    page = viewer.get(f"/projects/{pid}/experiments/{exp_id}").get_data(as_text=True)
    assert "Saídas" in page and "Executar de novo" not in page
    assert "Adicionar experimento" not in viewer.get(f"/projects/{pid}/experiments").get_data(as_text=True)
    url = f"/projects/{pid}/experiments/{exp_id}"
    assert _post(viewer, f"{url}/run", url).status_code == 403
    assert _post(viewer, f"{url}/delete", url).status_code == 403
    assert _post(viewer, f"/projects/{pid}/datasets/{ctx['ids']['dataset_id']}/delete", url).status_code == 403


def test_asset_in_use_by_a_running_experiment_cannot_be_deleted(app, client, ctx, db_session):
    from flautim.models import Dataset

    pid = ctx["project_id"]
    make_experiment(pid, ctx["ids"], state="running")
    did = ctx["ids"]["dataset_id"]
    r = _post(client, f"/projects/{pid}/datasets/{did}/delete", f"/projects/{pid}/datasets/{did}")
    assert r.status_code == 302
    assert "está em uso" in client.get(r.headers["Location"]).get_data(as_text=True)
    assert db_session.get(Dataset, did) is not None


def test_artifact_groups_keep_only_the_latest_best():
    from types import SimpleNamespace

    from flautim.web.experiments.display import artifact_groups

    rows = [
        SimpleNamespace(kind=kind, round=r, format=fmt, card={"metrics": {"accuracy": r / 10}})
        for kind, r in (("round", 1), ("best", 1), ("round", 2), ("best", 2), ("final", 2))
        for fmt in ("pytorch", "safetensors")
    ]
    groups = artifact_groups(rows)
    assert [(g["kind"], g["round"]) for g in groups] == [("final", 2), ("best", 2), ("round", 1), ("round", 2)]
    assert set(groups[0]["formats"]) == {"pytorch", "safetensors"}
    assert groups[1]["metrics"] == {"accuracy": 0.2}


def _panels_of(page: str) -> str:
    """The shared part of the experiment page: from the attempt line to the live status."""
    start = page.index('<p class="muted">')
    return page[start:page.index('id="live-status"', start)]


def test_experiment_page_tabs_are_shared_by_viewers_and_follow_the_experiment(app, client, ctx, db_session, tmp_path):
    """The tabs are rendered once and shared by every viewer; the header around them stays
    per user (name, CSRF, role buttons); a change of the experiment or the language shows."""
    from flask import g

    from flautim.models import Experiment

    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    feed_run(app, exp_id, tmp_path, scripted_run_lines(tmp_path), finish=None)
    url = f"/projects/{pid}/experiments/{exp_id}"
    owner_page = client.get(url).get_data(as_text=True)
    switch_user(client, "leitor@example.org")
    viewer_page = client.get(url).get_data(as_text=True)
    assert _panels_of(owner_page) == _panels_of(viewer_page)
    for page in (owner_page, viewer_page):
        assert "dona" not in _panels_of(page) and "leitor" not in _panels_of(page)
        assert "csrf" not in _panels_of(page)
    assert "Cancelar" in owner_page and "Cancelar" not in viewer_page
    assert '<span class="who">leitor</span>' in viewer_page
    assert 'id="round-current">3<' in viewer_page
    # The models table is not in the page: the script fetches it after the catch-up.
    assert "Carregando os modelos" in viewer_page and "safetensors" not in viewer_page
    # New rounds and a failure reason show at once (they are part of the cache key).
    experiment = db_session.get(Experiment, exp_id)
    experiment.rounds_done, experiment.failure_reason = 7, "client 1 ran out of memory"
    db_session.commit()
    page = client.get(url).get_data(as_text=True)
    assert 'id="round-current">7<' in page and "client 1 ran out of memory" in page
    # The same tabs in English for a user who picked it.
    token = csrf_token_from(page)
    client.post("/language", data={"csrf_token": token, "locale": "en", "next": url})
    g.pop("_flask_babel", None)  # the tests' app context (and its `g`) outlives a request
    english = client.get(url).get_data(as_text=True)
    assert "Loading the models" in english and "Carregando os modelos" not in english
    assert ">Compare</a>" in english and ">Comparar</a>" not in english  # the project's nav


def test_each_view_of_the_page_has_the_sessions_csrf_token_and_current_state(app, client, ctx, db_session):
    """Each view of the experiment page gets the session's own CSRF token, and flashed
    messages, a rename (of the experiment or its project) or a role change show at once."""
    from flautim.models import Experiment, Membership, Project, Role

    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    url = f"/projects/{pid}/experiments/{exp_id}"

    def tokens(page: str) -> set[str]:
        return set(re.findall(r'name="csrf_token" value="([^"]+)"', page)) | set(
            re.findall(r'<meta name="csrf-token" content="([^"]+)"', page))

    page = client.get(url).get_data(as_text=True)
    assert len(tokens(page)) == 1 and "Cancelar" in page
    cancelled = client.post(f"{url}/cancel", data={"csrf_token": tokens(page).pop()}, follow_redirects=True)
    assert cancelled.status_code == 200 and "Cancelamento pedido." in cancelled.get_data(as_text=True)
    assert "Cancelamento pedido." not in client.get(url).get_data(as_text=True)  # shown once

    experiment = db_session.get(Experiment, exp_id)
    experiment.name = "Renomeado"
    db_session.commit()
    assert "<h1>Renomeado" in client.get(url).get_data(as_text=True)
    project = db_session.get(Project, pid)
    project.name = "Projeto renomeado"
    db_session.commit()
    assert f'<a href="/projects/{pid}">Projeto renomeado</a>' in client.get(url).get_data(as_text=True)

    switch_user(client, "leitor@example.org")
    viewer_page = client.get(url).get_data(as_text=True)
    assert '<span class="who">leitor</span>' in viewer_page and "Clonar com alterações" not in viewer_page
    # The viewer's own token: it is accepted for the viewer's session.
    switched = client.post("/language", data={"csrf_token": tokens(viewer_page).pop(), "locale": "pt_BR", "next": url})
    assert switched.status_code == 302
    # Made an editor, as the owner: the buttons follow the role, the top bar the user.
    membership = db_session.query(Membership).filter_by(project_id=pid, user_id=ctx["viewer"]).one()
    membership.role = Role.EDITOR
    db_session.commit()
    editor_page = client.get(url).get_data(as_text=True)
    assert "Clonar com alterações" in editor_page and '<span class="who">leitor</span>' in editor_page


def test_metrics_version_is_kept_by_the_worker_and_reset_by_a_new_attempt(app, ctx, db_session, tmp_path):
    """The version that keys cached metric answers: the worker stores the attempt's newest
    metric row id with the rows, so the metrics API needs no probe of the index for it."""
    from sqlalchemy import func, select

    from flautim.models import Experiment, ExperimentState, MetricRow
    from flautim.web.experiments import results

    def newest(attempt: int) -> int:
        return db_session.scalar(select(func.max(MetricRow.id)).where(
            MetricRow.experiment_id == exp_id, MetricRow.attempt == attempt)) or 0

    exp_id = make_experiment(ctx["project_id"], ctx["ids"], state="running")
    assert db_session.get(Experiment, exp_id).metrics_version == 0
    feed_run(app, exp_id, tmp_path, scripted_run_lines(tmp_path, rounds=2), finish=None)
    experiment = db_session.get(Experiment, exp_id)
    db_session.refresh(experiment)
    first = experiment.metrics_version
    assert first == newest(1) > 0
    feed_run(app, exp_id, tmp_path, scripted_run_lines(tmp_path, rounds=3), finish=None)
    db_session.refresh(experiment)
    assert experiment.metrics_version == newest(1) > first
    # Rows the worker did not write (no version kept): the index is probed instead.
    experiment.metrics_version = None
    db_session.commit()
    assert results.metrics_version(experiment) == newest(1)
    # A new attempt starts at 0; the old one's version is still probed on request.
    experiment.transition(ExperimentState.SUCCEEDED)
    experiment.transition(ExperimentState.QUEUED)
    db_session.commit()
    assert experiment.metrics_version == 0 and results.metrics_version(experiment, 1) == newest(1)


def test_log_sources_are_kept_by_the_worker_and_reset_by_a_new_attempt(app, client, ctx, db_session, tmp_path):
    from flautim.models import Experiment, ExperimentState

    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], state="running")
    assert db_session.get(Experiment, exp_id).log_sources == []
    lines = [("client-1", "hello from 1"), ("server", "starting"), ("client-0", "hi"), ("client-1", "again")]
    feed_run(app, exp_id, tmp_path, lines, finish=None)
    feed_run(app, exp_id, tmp_path, [("client-10", "late"), ("server", "more")], finish=None)
    experiment = db_session.get(Experiment, exp_id)
    db_session.refresh(experiment)
    assert experiment.log_sources == ["client-1", "server", "client-0", "client-10"]
    page = client.get(f"/projects/{pid}/experiments/{exp_id}").get_data(as_text=True)
    select = page.split('id="log-source"', 1)[1].split("</select>", 1)[0]
    assert re.findall(r'<option value="([^"]+)"', select) == ["server", "clients", "client-0", "client-1", "client-10",
                                                              "client"]
    # Lines written without the worker (log_sources unknown): the page counts them instead.
    experiment.log_sources = None
    db_session.commit()
    page = client.get(f"/projects/{pid}/experiments/{exp_id}").get_data(as_text=True)
    select = page.split('id="log-source"', 1)[1].split("</select>", 1)[0]
    assert re.findall(r'<option value="([^"]+)"', select) == ["server", "clients", "client-0", "client-1", "client-10",
                                                              "client"]
    # A new attempt starts with none.
    experiment.transition(ExperimentState.SUCCEEDED)
    experiment.transition(ExperimentState.QUEUED)
    db_session.commit()
    assert experiment.log_sources == []


def test_the_experiment_page_loads_its_user_and_scope_in_one_statement(app, client, ctx, db_session):
    """The page fetches the session's user with the membership and experiment; Flask-Login
    still decides who is logged in (a session whose epoch moved on is sent to log in)."""
    from flask import g
    from sqlalchemy import event

    from flautim.models import User, db

    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"])
    url = f"/projects/{pid}/experiments/{exp_id}"
    statements = []

    def fresh_request():
        # As in a new request: nothing loaded yet (the tests' app context outlives requests).
        db.session.expunge_all()
        g.pop("_login_user", None)
        return client.get(url)

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        response = fresh_request()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert response.status_code == 200 and "Exp" in response.get_data(as_text=True)
    assert len(statements) == 1, statements

    owner = db.session.get(User, ctx["owner"])
    owner.session_epoch = (owner.session_epoch or 0) + 1  # as a password change does
    db.session.commit()
    response = fresh_request()
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_the_experiment_page_builds_no_orm_object_but_its_user(app, client, ctx, db_session):
    """The page's statement reads its scope and experiment as columns and builds the session's
    user into the ORM session itself (access.attach_session_user), where Flask-Login's loader
    finds it: a view leaves that user and nothing else in the session, and a user the session
    already holds is the one kept."""
    from flask import g

    from flautim.models import User, db

    pid = ctx["project_id"]
    url = f"/projects/{pid}/experiments/{make_experiment(pid, ctx['ids'])}"
    db.session.expunge_all()
    g.pop("_login_user", None)
    assert client.get(url).status_code == 200
    assert [type(obj) for obj in db.session.identity_map.values()] == [User]
    (user,) = db.session.identity_map.values()
    assert user.id == ctx["owner"] and user.email == "dona@example.org"
    assert g.membership.role.value == "owner" and g.project.id == pid

    g.pop("_login_user", None)
    assert client.get(url).status_code == 200
    assert db.session.identity_map.values() == [user]  # the same object, not a second one


def test_experiment_page_for_a_remember_me_login_and_where_the_run_ran(app, client, ctx, db_session, make_user):
    """The page read as columns answers as before: a browser logged in only by its
    remember-me cookie (no session id: the page's scope is fetched without its user) gets the
    page and the same 404s; the "not isolated" badge follows the backend the worker recorded
    in the run's summary, else the site's (local in the tests)."""
    from flask import g

    from flautim.models import Experiment
    from tests.conftest import PASSWORD

    def remembered_get(url: str):
        fresh_request_globals()
        remembered.delete_cookie("session")
        return remembered.get(url)

    pid = ctx["project_id"]
    exp_id = make_experiment(pid, ctx["ids"], name="Lembrada", state="running")
    with app.app_context():
        elsewhere = make_experiment(ctx["other_project"], {}, name="Alheia", state="running")
    def fresh_request_globals():
        # Flask-Login and Flask-WTF keep the user and the CSRF token on `g`, which the tests'
        # app context shares between requests, and so between the two browsers here.
        g.pop("_login_user", None)
        g.pop("csrf_token", None)

    remembered = app.test_client()
    fresh_request_globals()
    submit_form(remembered, "/auth/login", {"email": "dona@example.org", "password": PASSWORD, "remember": "y"})
    page = remembered_get(f"/projects/{pid}/experiments/{exp_id}").get_data(as_text=True)
    assert "<h1>Lembrada" in page and '<span class="who">dona</span>' in page and "MNIST" in page
    assert "não isolado" in page and "Cancelar" in page
    assert remembered_get(f"/projects/{pid}/experiments/{elsewhere}").status_code == 404
    assert remembered_get(f"/projects/{pid}/experiments/999999").status_code == 404
    fresh_request_globals()
    assert client.get(f"/projects/{pid}/experiments/{elsewhere}").status_code == 404

    experiment = db_session.get(Experiment, exp_id)
    experiment.summary = {"sandbox_backend": "docker"}
    db_session.commit()
    page = client.get(f"/projects/{pid}/experiments/{exp_id}").get_data(as_text=True)
    assert "<h1>Lembrada" in page and "não isolado" not in page
    experiment.summary = {"sandbox_backend": "local"}
    db_session.commit()
    assert "não isolado" in client.get(f"/projects/{pid}/experiments/{exp_id}").get_data(as_text=True)


def test_the_experiment_pages_kept_script_tags_follow_the_script_root_and_language(app, client, ctx, db_session):
    """The page's script tags are rendered once per language and script root (chrome.static_part)
    and kept: each view still gets its own prefix and its language's run-messages catalog."""
    from flask_babel import refresh

    from tests.conftest import csrf_token_from

    pid = ctx["project_id"]
    url = f"/projects/{pid}/experiments/{make_experiment(pid, ctx['ids'])}"

    def switch_language(locale: str) -> None:
        page = client.get(url).get_data(as_text=True)
        client.post("/language", data={"csrf_token": csrf_token_from(page), "locale": locale, "next": url})
        refresh()  # Flask-Babel keeps the locale on the tests' app context, which outlives requests

    def scripts(page: str) -> list[str]:
        return re.findall(r'<script src="([^"]+)"></script>', page)

    for _round in range(2):  # the second round is served from the kept fragments
        plain = scripts(client.get(url).get_data(as_text=True))
        mounted = scripts(client.get(url, base_url="http://localhost/flautim/").get_data(as_text=True))
        assert plain[0] == "/static/js/confirm.js" and mounted[0] == "/flautim/static/js/confirm.js"
        assert re.fullmatch(r"/projects/run-messages/pt_BR\.\w+\.js", plain[2])
        assert re.fullmatch(r"/flautim/projects/run-messages/pt_BR\.\w+\.js", mounted[2])
        assert len(plain) == len(mounted) == 9
        switch_language("en")
        english = scripts(client.get(url).get_data(as_text=True))
        assert re.fullmatch(r"/projects/run-messages/en\.\w+\.js", english[2]) and english[:2] == plain[:2]
        switch_language("pt_BR")
