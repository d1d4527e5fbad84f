"""The admin panel: one gate for the whole blueprint, users, projects, experiments, queues."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD, csrf_token_from, login, submit_form

ADMIN_PAGES = ["/admin/", "/admin/users", "/admin/projects", "/admin/experiments", "/admin/queues", "/admin/support"]


@pytest.fixture
def admin_client(app, make_user):
    make_user("root@example.org", name="Root", is_admin=True)
    client = app.test_client()
    login(client, "root@example.org")
    return client


def _user(app, email):
    from flautim.models import User, db

    with app.app_context():
        return db.session.scalar(select(User).where(User.email == email))


def test_every_admin_page_is_404_for_non_admins(app, client, make_user):
    for path in ADMIN_PAGES:
        assert client.get(path).status_code == 404, path
    make_user("plain@example.org")
    login(client, "plain@example.org")
    for path in ADMIN_PAGES:
        assert client.get(path).status_code == 404, path
    # POST routes are behind the same gate.
    token = csrf_token_from(client.get("/auth/account").get_data(as_text=True))
    assert client.post("/admin/users/1/admin", data={"csrf_token": token}).status_code == 404


def test_every_admin_page_renders_for_admins(admin_client):
    for path in ADMIN_PAGES:
        assert admin_client.get(path).status_code == 200, path


def test_every_admin_route_is_gated(app):
    """A new admin route cannot forget the gate: it is the blueprint's before_request."""
    from flautim.web.admin import bp
    from flautim.web.admin.guard import admins_only

    assert admins_only in bp.before_request_funcs[None]
    assert [r for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.")]


def test_user_search_by_name_and_email(admin_client, make_user):
    make_user("joana@uni.br", name="Joana Prado")
    make_user("pedro@empresa.com", name="Pedro Alves")
    page = admin_client.get("/admin/users?q=prado").get_data(as_text=True)
    assert "joana@uni.br" in page and "pedro@empresa.com" not in page
    page = admin_client.get("/admin/users?q=EMPRESA").get_data(as_text=True)
    assert "pedro@empresa.com" in page and "joana@uni.br" not in page
    # LIKE wildcards are searched literally.
    page = admin_client.get("/admin/users?q=%25").get_data(as_text=True)
    assert "Nenhum usuário encontrado." in page


def test_deactivate_and_reactivate(app, admin_client, make_user):
    uid = make_user("lucas@example.org")
    token = csrf_token_from(admin_client.get("/admin/users").get_data(as_text=True))
    assert admin_client.post(f"/admin/users/{uid}/active", data={"csrf_token": token}).status_code == 302
    assert _user(app, "lucas@example.org").active is False
    other = app.test_client()
    response = submit_form(other, "/auth/login", {"email": "lucas@example.org", "password": PASSWORD})
    assert "desativada" in response.get_data(as_text=True)
    admin_client.post(f"/admin/users/{uid}/active", data={"csrf_token": token})
    assert _user(app, "lucas@example.org").active is True
    login(other, "lucas@example.org")


def test_grant_and_revoke_admin_but_never_the_last(app, admin_client, make_user):
    uid = make_user("maria@example.org")
    root_id = _user(app, "root@example.org").id
    token = csrf_token_from(admin_client.get("/admin/users").get_data(as_text=True))
    # Root is the only admin: revoking their own right is refused.
    response = admin_client.post(f"/admin/users/{root_id}/admin", data={"csrf_token": token}, follow_redirects=True)
    assert "pelo menos um administrador" in response.get_data(as_text=True)
    assert _user(app, "root@example.org").is_admin is True
    # Grant Maria, then root may step down.
    admin_client.post(f"/admin/users/{uid}/admin", data={"csrf_token": token})
    assert _user(app, "maria@example.org").is_admin is True
    admin_client.post(f"/admin/users/{root_id}/admin", data={"csrf_token": token})
    assert _user(app, "root@example.org").is_admin is False
    # No longer an admin: the panel is gone for root.
    assert admin_client.get("/admin/").status_code == 404


def test_admin_cannot_deactivate_self(app, admin_client):
    root_id = _user(app, "root@example.org").id
    token = csrf_token_from(admin_client.get("/admin/users").get_data(as_text=True))
    admin_client.post(f"/admin/users/{root_id}/active", data={"csrf_token": token})
    assert _user(app, "root@example.org").active is True


def test_admin_actions_need_csrf(app, admin_client, make_user):
    uid = make_user("nuno@example.org")
    assert admin_client.post(f"/admin/users/{uid}/admin", data={}).status_code == 400
    assert _user(app, "nuno@example.org").is_admin is False


def test_projects_with_member_counts(admin_client, make_user, make_project):
    a = make_user("o1@example.org")
    b = make_user("o2@example.org")
    c = make_user("o3@example.org")
    make_project("Projeto Três", a, editors=[b], viewers=[c])
    make_project("Projeto Solo", b)
    page = admin_client.get("/admin/projects").get_data(as_text=True)
    rows = dict(re.findall(r"<td>([^<]+?)(?: <span[^>]*>[^<]*</span>)?</td>\s*<td>[^<]*</td>\s*<td class=\"member-count\">(\d+)</td>", page))
    assert rows == {"Projeto Três": "3", "Projeto Solo": "1"}


def test_experiments_across_projects_with_state_filter(app, admin_client, make_user, make_project):
    from flautim.models import Experiment, ExperimentState, db

    owner = make_user("exp@example.org")
    p1, p2 = make_project("P1", owner), make_project("P2", owner)
    with app.app_context():
        db.session.add_all(
            [
                Experiment(project_id=p1, name="mnist-fedavg", state=ExperimentState.RUNNING),
                Experiment(project_id=p2, name="cifar-prox", state=ExperimentState.FAILED),
            ]
        )
        db.session.commit()
    page = admin_client.get("/admin/experiments").get_data(as_text=True)
    assert "mnist-fedavg" in page and "cifar-prox" in page and "state-running" in page
    page = admin_client.get("/admin/experiments?state=failed").get_data(as_text=True)
    assert "cifar-prox" in page and "mnist-fedavg" not in page
    assert admin_client.get("/admin/experiments?state=bogus").status_code == 400


def test_queues_page_reads_real_rq_state(app, admin_client):
    import redis
    from rq import Queue, Worker

    connection = redis.Redis.from_url(app.config["FLAUTIM_REDIS_URL_RESOLVED"])
    queue = Queue("experiments", connection=connection)
    job = queue.enqueue("flautim.worker.does_not_matter", 42, job_id="exp-test-1")
    gpu = Queue("experiments-gpu", connection=connection)
    failed = gpu.enqueue("builtins.len", None, job_id="exp-test-2")
    # Run the GPU job for real so it lands in the failed registry (len(None) raises).
    Worker([gpu], connection=connection, name="admin-test-worker").work(burst=True)
    page = admin_client.get("/admin/queues").get_data(as_text=True)
    assert job.id in page and failed.id in page
    sections = dict(re.findall(r'data-queue="([^"]+)">.*?<strong class="n-queued">(\d+)</strong>', page, flags=re.S))
    assert sections == {"experiments": "1", "experiments-gpu": "0"}
    gpu_section = page.split('data-queue="experiments-gpu"')[1]
    assert re.search(r'<strong class="n-failed">1</strong>', gpu_section)
    assert "TypeError" in gpu_section


def test_create_admin_command_creates_and_promotes(app, make_user):
    from flautim.models import User, db
    from flautim.web.admin.commands import AdminCommandError, create_admin

    assert "created" in create_admin("Chefe@Example.org", "Chefe", "montanha azul 77 km", app=app)
    user = _user(app, "chefe@example.org")
    assert user.is_admin and user.name == "Chefe"
    make_user("promo@example.org")
    assert "now an administrator" in create_admin("promo@example.org", "x", "", app=app)
    assert _user(app, "promo@example.org").is_admin
    with pytest.raises(AdminCommandError, match="^email:"):
        create_admin("not-an-email", "N", "montanha azul 77 km", app=app)
    with pytest.raises(AdminCommandError, match="^password:.*10 caracteres"):
        create_admin("weak@example.org", "W", "short", app=app)
    with pytest.raises(AdminCommandError, match="^name:"):
        create_admin("noname@example.org", "  ", "montanha azul 77 km", app=app)
    with app.app_context():
        assert db.session.scalar(select(User).where(User.email == "weak@example.org")) is None


def test_create_admin_cli(app, database_url, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import REDIS_URL

    flautim = Path(sys.executable).with_name("flautim")
    env = dict(
        os.environ,
        FLAUTIM_DATABASE_URL=database_url,
        FLAUTIM_REDIS_URL=REDIS_URL,
        FLAUTIM_DATA_DIR=str(tmp_path / "cli"),
    )
    args = [str(flautim), "create-admin", "--email", "cli@example.org", "--name", "Cli"]
    done = subprocess.run([*args, "--password", "rios e pontes 2024"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "administrator cli@example.org created" in done.stdout
    assert _user(app, "cli@example.org").is_admin
    done = subprocess.run(
        [str(flautim), "create-admin", "--email", "c2@example.org", "--name", "C", "--password", "123"],
        env=env, capture_output=True, text=True,
    )
    assert done.returncode == 1 and "Error: password:" in done.stderr
