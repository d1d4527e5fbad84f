"""Quotas on the real app, PostgreSQL and Redis: submissions and uploads refused with the
limit and its numbers (pages and API, pt-BR and en), run time counted when a run ends,
running limits holding runs in the queue, the admin's overrides and the usage page."""

from __future__ import annotations

import html
from datetime import timedelta

import flask_babel
import pytest
from sqlalchemy import select

from flautim import quotas
from flautim.models import Experiment, ExperimentState, RunUsage, User, db, utcnow
from tests.conftest import login, submit_form
from tests.experiments_support import MNIST, setup_project, upload, upload_mnist_assets


@pytest.fixture
def ctx(app, make_user, make_project, client, db_session):
    c = setup_project(make_user, make_project, client)
    c["ids"] = upload_mnist_assets(client, c["project_id"])
    return c


def _draft(ctx, name: str = "exp", **fields) -> int:
    experiment = Experiment(project_id=ctx["project_id"], name=name, created_by_id=ctx["owner"], summary={},
                            **ctx["ids"], **fields)
    db.session.add(experiment)
    db.session.commit()
    return experiment.id


def _run_page(client, ctx, experiment_id: int):
    url = f"/projects/{ctx['project_id']}/experiments/{experiment_id}"
    return submit_form(client, f"{url}/run", {}, page=f"{url}/review", follow_redirects=True)


def _override(scope, subject_id, **values) -> None:
    quotas.save_override(scope, subject_id, values, None)
    db.session.commit()


def _state(experiment_id: int) -> ExperimentState:
    db.session.expire_all()
    return db.session.get(Experiment, experiment_id).state


def _page_text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _api_run(client, ctx, experiment_id: int, secret: str):
    return client.post(f"/api/v1/projects/{ctx['project_id']}/experiments/{experiment_id}/run",
                       headers={"Authorization": f"Bearer {secret}"})


def test_a_run_past_the_queued_limit_is_refused_on_the_page_and_the_api_with_the_numbers(app, client, ctx):
    from flautim.web.api.tokens import create_token

    _override(quotas.PROJECT, ctx["project_id"], queued=2)
    first, second, third = (_draft(ctx, f"e{i}") for i in range(3))
    for experiment_id in (first, second):
        assert _run_page(client, ctx, experiment_id).status_code == 200
        assert _state(experiment_id) == ExperimentState.QUEUED

    page = _page_text(_run_page(client, ctx, third))
    assert "Limite de experimentos na fila atingido (projeto “Federado”): 2 de 2." in page
    assert _state(third) == ExperimentState.DRAFT

    _token, secret = create_token(db.session.get(User, ctx["owner"]), "cli")
    response = _api_run(client, ctx, third, secret)
    assert response.status_code == 409
    body = response.get_json()
    assert "2 de 2" in str(body) and "fila" in str(body)

    # In English for a user who chose English.
    submit_form(client, "/language", {"locale": "en", "next": "/"}, page="/auth/account")
    flask_babel.refresh()  # the test's app context, shared by its requests, cached the language
    page = _page_text(_run_page(client, ctx, third))
    assert "Queue limit reached (project “Federado”): 2 of 2." in page
    assert _state(third) == ExperimentState.DRAFT

    # A cancelled run leaves the queue: the next one is accepted.
    url = f"/projects/{ctx['project_id']}/experiments/{first}"
    submit_form(client, f"{url}/cancel", {}, page=url)
    assert _state(first) == ExperimentState.CANCELLED
    assert _api_run(client, ctx, third, secret).status_code == 202


def test_a_spent_monthly_budget_refuses_runs_of_its_kind_only(app, client, ctx):
    owner, project_id = ctx["owner"], ctx["project_id"]
    _override(quotas.USER, owner, cpu_hours=2)
    last_month = quotas.month_start() - timedelta(days=3)
    db.session.add(RunUsage(user_id=owner, project_id=project_id, attempt=1, containers=3, wall_seconds=3600,
                            container_seconds=3 * 3600, finished_at=last_month))
    db.session.commit()
    cpu_run = _draft(ctx, "cpu")
    _run_page(client, ctx, cpu_run)  # last month's hours do not count
    assert _state(cpu_run) == ExperimentState.QUEUED

    db.session.add(RunUsage(user_id=owner, project_id=project_id, attempt=1, containers=3, wall_seconds=2400,
                            container_seconds=3 * 2400, finished_at=utcnow()))
    db.session.commit()
    another = _draft(ctx, "cpu-2")
    page = _page_text(_run_page(client, ctx, another))
    assert "Orçamento mensal de tempo de CPU esgotado (sua conta): 2.0 h usadas de 2.0 h" in page
    assert _state(another) == ExperimentState.DRAFT

    gpu_run = _draft(ctx, "gpu", wants_gpu=True)  # the GPU budget is its own
    _run_page(client, ctx, gpu_run)
    assert _state(gpu_run) == ExperimentState.QUEUED


def test_an_upload_that_would_pass_the_storage_limit_is_refused(app, client, ctx):
    from flautim.models import Dataset

    _override(quotas.PROJECT, ctx["project_id"], storage_mb=1)
    used = quotas.storage_bytes(quotas.PROJECT, ctx["project_id"])
    assert used > 0  # the MNIST assets uploaded by the fixture
    before = db.session.query(Dataset).count()
    big_dataset = {"dataset_file": ("dataset.py", (MNIST / "dataset.py").read_bytes()),
                   "data_files": [("big.bin", b"x" * (1024 * 1024))]}
    response = upload(client, ctx["project_id"], "datasets", big_dataset, {"name": "grande"})
    page = _page_text(response)
    assert response.status_code == 400
    assert "passaria do limite de armazenamento (projeto “Federado”)" in page
    assert "de 1.0 MB" in page
    assert db.session.query(Dataset).count() == before
    # The person's own limit counts too, across their projects.
    _override(quotas.PROJECT, ctx["project_id"], storage_mb=None)
    _override(quotas.USER, ctx["owner"], storage_mb=1)
    response = upload(client, ctx["project_id"], "datasets", big_dataset, {"name": "grande"})
    assert "(sua conta)" in _page_text(response)


def test_run_time_is_wall_seconds_times_containers_counted_once_when_a_run_ends(app, ctx):
    experiment_id = _draft(ctx)
    experiment = db.session.get(Experiment, experiment_id)
    for state in ("queued", "preparing", "running", "succeeded"):
        experiment.transition(ExperimentState(state))
    experiment.submitted_by_id = ctx["owner"]
    experiment.summary = {"duration_s": 1800.0}  # the hyperparameters ask for 2 clients
    db.session.commit()

    assert quotas.settle_usage() == 1
    assert quotas.settle_usage() == 0  # once per attempt
    row = db.session.scalar(select(RunUsage))
    assert (row.containers, row.wall_seconds, row.container_seconds, row.gpu) == (3, 1800.0, 5400.0, False)
    for scope, subject in ((quotas.USER, ctx["owner"]), (quotas.PROJECT, ctx["project_id"])):
        usage = quotas.usage_for(scope, subject)
        assert (usage.cpu_seconds, usage.gpu_seconds) == (5400.0, 0.0)
    # Deleting the experiment does not give the budget back.
    db.session.delete(db.session.get(Experiment, experiment_id))
    db.session.commit()
    assert quotas.usage_for(quotas.USER, ctx["owner"]).cpu_seconds == 5400.0


def test_a_run_over_the_running_limit_waits_in_the_queue_with_the_reason(app, client, ctx):
    from flautim.worker.queue import dispatch_waiting_runs

    _override(quotas.PROJECT, ctx["project_id"], running=1)
    busy = _draft(ctx, "busy")
    experiment = db.session.get(Experiment, busy)
    for state in ("queued", "preparing", "running"):
        experiment.transition(ExperimentState(state))
    db.session.commit()

    waiting = _draft(ctx, "waiting")
    _run_page(client, ctx, waiting)
    db.session.expire_all()
    assert _state(waiting) == ExperimentState.QUEUED
    assert db.session.get(Experiment, waiting).job_id is None  # not handed to the workers
    page = _page_text(client.get(f"/projects/{ctx['project_id']}/usage"))
    assert "Aguardando: limite de experimentos em execução (projeto “Federado”): 1 de 1." in page

    experiment = db.session.get(Experiment, busy)
    experiment.transition(ExperimentState.SUCCEEDED)
    db.session.commit()
    assert dispatch_waiting_runs(app.extensions["flautim_config"]) == [waiting]
    db.session.expire_all()
    assert db.session.get(Experiment, waiting).job_id


def test_admins_set_a_users_and_a_projects_limits_and_members_see_their_usage(app, make_user, make_project):
    # No app context held by the test: each client's requests get their own (logins differ).
    owner = make_user("dona@example.org")
    make_user("fora@example.org")
    project_id = make_project("Federado", owner)
    make_user("root@example.org", is_admin=True)
    member, admin = app.test_client(), app.test_client()
    login(member, "dona@example.org")
    login(admin, "root@example.org")
    assert member.get(f"/admin/users/{owner}/quotas").status_code == 404  # not an admin

    page = admin.get(f"/admin/users/{owner}/quotas").get_data(as_text=True)
    assert "Padrão do site: 20" in page
    response = submit_form(admin, f"/admin/users/{owner}/quotas",
                           {"running": "", "queued": "0", "storage_mb": "-1", "cpu_hours": "1.5", "gpu_hours": ""})
    assert response.status_code == 302
    bad = submit_form(admin, f"/admin/projects/{project_id}/quotas", {"queued": "-5"})
    assert bad.status_code == 400
    assert submit_form(admin, f"/admin/projects/{project_id}/quotas", {"queued": "7"}).status_code == 302
    config = app.extensions["flautim_config"]
    with app.app_context():
        override = quotas.override_for(quotas.USER, owner)
        assert (override.running, override.queued, override.storage_mb, override.cpu_hours,
                override.gpu_hours) == (None, 0, -1, 1.5, None)
        limits = quotas.limits_for(quotas.USER, owner, config)
        assert (limits.running, limits.queued, limits.storage_bytes, limits.cpu_seconds) == (4, 0, None, 5400.0)
        assert quotas.limits_for(quotas.PROJECT, project_id, config).queued == 7

    # The member sees the project's and their own usage against the limits.
    page = _page_text(member.get(f"/projects/{project_id}/usage"))
    assert "Uso e limites" in page and "0 de 7" in page and "0 de 0" in page and "sem limite" in page
    assert "Nenhum experimento na fila." in page
    # Outsiders cannot see a project's usage.
    outsider = app.test_client()
    login(outsider, "fora@example.org")
    assert outsider.get(f"/projects/{project_id}/usage").status_code == 404


def test_a_spent_budget_holds_that_users_queued_runs_but_not_a_colleagues(app, client, ctx, make_user):
    from flautim.models import Membership, Role
    from flautim.worker.queue import dispatch_waiting_runs

    colleague = make_user("colega@example.org")
    db.session.add(Membership(project_id=ctx["project_id"], user_id=colleague, role=Role.EDITOR))
    _override(quotas.USER, ctx["owner"], cpu_hours=1)
    db.session.add(RunUsage(user_id=ctx["owner"], project_id=ctx["project_id"], attempt=1, containers=3,
                            wall_seconds=1200, container_seconds=3600, finished_at=utcnow()))
    runs = {}
    for name, user_id in (("mine", ctx["owner"]), ("theirs", colleague)):  # queued while the budget lasted
        runs[name] = _draft(ctx, name)
        experiment = db.session.get(Experiment, runs[name])
        experiment.transition(ExperimentState.QUEUED)
        experiment.submitted_by_id = user_id
        db.session.commit()

    assert dispatch_waiting_runs(app.extensions["flautim_config"]) == [runs["theirs"]]
    page = _page_text(client.get(f"/projects/{ctx['project_id']}/usage"))
    assert "Aguardando: orçamento mensal de tempo de CPU esgotado (sua conta): 1.0 h de 1.0 h." in page
    assert "Entregue aos workers" in page
    # On the page other members read, a user's limit names whose account it is.
    hold = quotas.Hold(quotas.USER, ctx["owner"], "running", 4, 4)
    assert hold.message(None, "Dona") == "Aguardando: limite de experimentos em execução (conta de Dona): 4 de 4."
