"""Projects: create, show, settings (rename, describe, archive, delete), roles and the
activity log, through the real pages (PostgreSQL, CSRF, the login form)."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from flautim.models import AuditEvent, Membership, Project, Role, db
from tests.conftest import csrf_token_from, login, submit_form


def _project_id_from(response) -> int:
    match = re.search(r"/projects/(\d+)$", response.headers["Location"])
    assert match, response.headers.get("Location")
    return int(match.group(1))


@pytest.fixture
def owner(make_user, client):
    uid = make_user("ana@example.org", name="Ana")
    login(client, "ana@example.org")
    return uid


def test_create_project_makes_me_owner_and_shows_it(app, client, owner):
    response = submit_form(
        client, "/projects/new", {"name": "  Classificação de dígitos  ", "description": "MNIST"}
    )
    assert response.status_code == 302
    pid = _project_id_from(response)
    page = client.get(f"/projects/{pid}").get_data(as_text=True)
    assert "Classificação de dígitos" in page
    assert "MNIST" in page
    assert 'class="my-role">dono<' in page
    listing = client.get("/projects/").get_data(as_text=True)
    assert f"/projects/{pid}" in listing
    with app.app_context():
        project = db.session.get(Project, pid)
        assert project.name == "Classificação de dígitos"  # stripped
        membership = db.session.scalar(select(Membership).where(Membership.project_id == pid))
        assert (membership.user_id, membership.role) == (owner, Role.OWNER)
        actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.project_id == pid)).all()
        assert actions == ["project.created"]


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "Dê um nome ao projeto."),
        ("    ", "Dê um nome ao projeto."),
        ("x" * 101, "no máximo 100 caracteres"),
        ("bad\nname", "caracteres de controle"),
    ],
)
def test_bad_project_names_are_refused_with_a_message(app, client, owner, name, message):
    response = submit_form(client, "/projects/new", {"name": name, "description": ""})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Project)) == 0


def test_unicode_name_of_100_characters_is_fine(app, client, owner):
    name = "Ñandú 数据 ação 🚀 " + "é" * 84
    assert len(name) == 100
    response = submit_form(client, "/projects/new", {"name": name})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Project, _project_id_from(response)).name == name


def test_over_long_description_is_refused(client, owner):
    response = submit_form(client, "/projects/new", {"name": "P", "description": "d" * 2001})
    assert response.status_code == 400
    assert "no máximo 2000 caracteres" in response.get_data(as_text=True)


def test_owner_renames_editor_only_describes(app, client, owner, make_user, make_project):
    editor = make_user("edu@example.org", name="Edu")
    pid = make_project("Antigo", owner, editors=[editor])
    r = submit_form(client, f"/projects/{pid}/settings", {"name": "Novo", "description": "d1"})
    assert r.status_code == 302
    client.post("/auth/logout", data={"csrf_token": csrf_token_from(client.get("/projects/").get_data(as_text=True))})
    login(client, "edu@example.org")
    # The editor's form has no name field; a forged name is ignored.
    r = submit_form(client, f"/projects/{pid}/settings", {"name": "Hack", "description": "d2"})
    assert r.status_code == 302
    with app.app_context():
        project = db.session.get(Project, pid)
        assert (project.name, project.description) == ("Novo", "d2")
        actions = db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.project_id == pid).order_by(AuditEvent.id)
        ).all()
        assert actions == ["project.renamed", "project.described", "project.described"]
    # An editor trying an owner's action gets 403.
    r = submit_form(client, f"/projects/{pid}/archive", {}, page=f"/projects/{pid}")
    assert r.status_code == 403


def test_viewer_cannot_edit_or_open_settings(client, make_user, make_project):
    owner = make_user("o@example.org")
    viewer = make_user("v@example.org")
    pid = make_project("P", owner, viewers=[viewer])
    login(client, "v@example.org")
    assert client.get(f"/projects/{pid}").status_code == 200
    assert client.get(f"/projects/{pid}/settings").status_code == 403
    r = submit_form(client, f"/projects/{pid}/settings", {"description": "x"}, page=f"/projects/{pid}")
    assert r.status_code == 403


def test_archived_project_is_read_only_until_unarchived(app, client, owner, make_project):
    pid = make_project("P", owner)
    r = submit_form(client, f"/projects/{pid}/archive", {}, page=f"/projects/{pid}/settings")
    assert r.status_code == 302
    assert "arquivado" in client.get(f"/projects/{pid}").get_data(as_text=True)
    r = submit_form(client, f"/projects/{pid}/settings", {"name": "P2", "description": ""})
    assert r.status_code == 409
    assert "somente leitura" in r.get_data(as_text=True)
    with app.app_context():
        from flask import g  # noqa: F401

        from flautim.web.projects.access import project_is_writable

        assert not project_is_writable(db.session.get(Project, pid))
    r = submit_form(client, f"/projects/{pid}/unarchive", {}, page=f"/projects/{pid}/settings")
    assert r.status_code == 302
    r = submit_form(client, f"/projects/{pid}/settings", {"name": "P2", "description": ""})
    assert r.status_code == 302
    with app.app_context():
        assert db.session.get(Project, pid).name == "P2"


def test_delete_needs_the_exact_name(app, client, owner, make_project):
    from flautim.storage import project_dir

    pid = make_project("Meu projeto", owner)
    stored = project_dir(app.extensions["flautim_config"].data_path, pid) / "datasets" / "1" / "dataset.py"
    stored.parent.mkdir(parents=True)
    stored.write_text("x = 1\n")
    r = submit_form(client, f"/projects/{pid}/delete", {"confirm_name": "meu projeto"}, page=f"/projects/{pid}/settings")
    assert r.status_code == 400
    assert "não confere" in r.get_data(as_text=True)
    r = submit_form(client, f"/projects/{pid}/delete", {"confirm_name": "Meu projeto"}, page=f"/projects/{pid}/settings")
    assert r.status_code == 302
    with app.app_context():
        assert db.session.get(Project, pid) is None
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "project.deleted"))
        assert event.detail["project_id"] == pid and event.target == "Meu projeto"
    assert client.get(f"/projects/{pid}").status_code == 404
    assert not stored.parent.parent.parent.exists()


def test_forged_csrf_token_is_refused(app, client, owner):
    r = client.post("/projects/new", data={"csrf_token": "forged", "name": "P"})
    assert r.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Project)) == 0


def test_anonymous_is_sent_to_login(client, make_user, make_project):
    pid = make_project("P", make_user("o@example.org"))
    r = client.get(f"/projects/{pid}")
    assert r.status_code == 302
    assert "/auth/login" in r.headers["Location"]
    assert "next=" in r.headers["Location"]


def _add_experiment(app, pid: int, state: str) -> int:
    from flautim.models import Experiment, ExperimentState

    with app.app_context():
        exp = Experiment(project_id=pid, name="e", state=ExperimentState(state))
        db.session.add(exp)
        db.session.commit()
        return exp.id


def test_archive_and_delete_wait_for_running_experiments(app, client, owner, make_project):
    pid = make_project("P", owner)
    _add_experiment(app, pid, "running")
    r = submit_form(client, f"/projects/{pid}/archive", {}, page=f"/projects/{pid}/settings")
    assert r.status_code == 409
    assert "em andamento" in r.get_data(as_text=True)
    r = submit_form(client, f"/projects/{pid}/delete", {"confirm_name": "P"}, page=f"/projects/{pid}/settings")
    assert r.status_code == 409
    with app.app_context():
        project = db.session.get(Project, pid)
        assert project is not None and project.archived_at is None


def test_archived_project_refuses_every_write_of_the_other_pages(app, client, owner, make_project):
    """Uploads, new experiments, runs, deletions (pages and API) answer 409 on an archived project."""
    from flautim.web.api.tokens import create_token

    pid = make_project("P", owner)
    eid = _add_experiment(app, pid, "draft")
    with app.app_context():
        from flautim.models import User

        _, secret = create_token(db.session.get(User, owner), "t")
    submit_form(client, f"/projects/{pid}/archive", {}, page=f"/projects/{pid}/settings")
    csrf = csrf_token_from(client.get(f"/projects/{pid}").get_data(as_text=True))
    checked, wrong = 0, []
    for rule in app.url_map.iter_rules():
        if "POST" not in rule.methods or "project_id" not in rule.arguments:
            continue
        if rule.endpoint.startswith(("projects.", "admin.")):
            continue
        if set(rule.arguments) - {"project_id", "experiment_id", "kind"}:
            continue  # needs another object: covered by the ones that create it
        kinds = sorted(rule._converters["kind"].items) if "kind" in rule.arguments else [None]
        for kind in kinds:
            values = {"project_id": pid, "experiment_id": eid, "kind": kind}
            url = app.url_map.bind("localhost").build(
                rule.endpoint, {k: v for k, v in values.items() if k in rule.arguments}, method="POST"
            )
            if rule.rule.startswith("/api/"):
                auth = {"Authorization": f"Bearer {secret}"}
                r = client.post(url, json={}, headers=auth)
                if r.status_code == 415:  # an upload: it wants multipart
                    r = client.post(url, data={"file": (io.BytesIO(b"x"), "x.zip")}, headers=auth)
            else:
                r = client.post(url, data={"csrf_token": csrf})
            checked += 1
            if r.status_code != 409:
                wrong.append(f"POST {url} ({rule.endpoint}) -> {r.status_code}")
    assert checked >= 3
    assert not wrong, "writes accepted on an archived project:\n  " + "\n  ".join(wrong)


def _post_every_write(app, client, victim, token: str, skip: set[str]) -> list[tuple[str, int]]:
    """POST every project-scoped write route (pages with CSRF, API with `token`)."""
    from tests.test_tenant_isolation import IGNORED_METHODS, _fillings, _id_rules, _url

    csrf = csrf_token_from(client.get(f"/projects/{victim.project_id}").get_data(as_text=True))
    results = []
    for rule in _id_rules(app):
        if ("POST" not in rule.methods or "project_id" not in rule.arguments or rule.endpoint in skip
                or rule.rule.startswith("/admin")):  # the admin panel has its own gate
            continue
        assert rule.methods - IGNORED_METHODS
        for values in _fillings(rule, victim):
            url = _url(app, rule, values)
            if rule.rule.startswith("/api/"):
                auth = {"Authorization": f"Bearer {token}"}
                r = client.post(url, json={}, headers=auth)
                if r.status_code == 415:  # an upload: it wants multipart
                    r = client.post(url, data={"file": (io.BytesIO(b"x"), "x.zip")}, headers=auth)
            else:
                r = client.post(url, data={"csrf_token": csrf})
            results.append((f"POST {url} ({rule.endpoint})", r.status_code))
    return results


def test_a_viewer_gets_403_on_every_write_and_an_editor_on_every_owner_action(
    app, client, make_user, make_project
):
    """Roles on every route that exists: viewers only look, editors do not manage."""
    from flautim.models import User
    from flautim.web.api.tokens import create_token
    from tests.test_tenant_isolation import _make_victim

    victim = _make_victim(app, make_user, make_project)
    viewer = make_user("viewer@example.org")
    with app.app_context():
        db.session.add(Membership(project_id=victim.project_id, user_id=viewer, role=Role.VIEWER))
        db.session.commit()
        _, viewer_token = create_token(db.session.get(User, viewer), "v")
        _, editor_token = create_token(
            db.session.scalar(select(User).where(User.email == "colleague@example.org")), "e"
        )
    login(client, "viewer@example.org")
    results = _post_every_write(app, client, victim, viewer_token, skip={"projects.leave_project"})
    assert len(results) >= 10
    wrong = [f"{what} -> {status}" for what, status in results if status != 403]
    assert not wrong, "a viewer was not refused:\n  " + "\n  ".join(wrong)

    client.post("/auth/logout", data={"csrf_token": csrf_token_from(client.get("/projects/").get_data(as_text=True))})
    login(client, "colleague@example.org")
    owner_only = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("projects.") and "POST" in rule.methods
    } - {"projects.create", "projects.leave_project", "projects.update_settings"}
    results = _post_every_write(
        app, client, victim, editor_token,
        skip={r.endpoint for r in app.url_map.iter_rules()} - owner_only,
    )
    assert len(results) >= 8
    wrong = [f"{what} -> {status}" for what, status in results if status != 403]
    assert not wrong, "an editor did an owner's action:\n  " + "\n  ".join(wrong)
