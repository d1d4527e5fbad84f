"""Support about one experiment: the failed run's "Falar com o suporte sobre este experimento"
opens the contact form with the experiment attached; the ticket keeps the reference, staff
are told over real SMTP and see it from the ticket; only an experiment the user can see may
be attached, whatever the form carries."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from tests.conftest import csrf_token_from, login
from tests.experiments_support import make_experiment


@pytest.fixture
def world(app, make_user, make_project):
    owner = make_user("dona@example.org", name="Dona")
    viewer = make_user("leitor@example.org", name="Leitor")
    outsider = make_user("fora@example.org", name="Fora")
    make_user("admin@example.org", name="Admin", is_admin=True)
    project_id = make_project("Federado", owner, viewers=[viewer])
    other_project = make_project("Outro", outsider)
    with app.app_context():
        from flautim.models import Experiment, FailureKind, db

        failed = make_experiment(project_id, {}, name="Regressão que falhou", state="failed")
        experiment = db.session.get(Experiment, failed)
        experiment.failure_kind, experiment.failure_reason = (
            FailureKind.USER_CODE,
            "api.py:19: shape mismatch",
        )
        db.session.commit()
        running = make_experiment(project_id, {}, name="Em andamento", state="running")
        foreign = make_experiment(other_project, {}, name="Segredo alheio", state="failed")
    return {"project_id": project_id, "failed": failed, "running": running, "foreign": foreign}


def _tickets(app) -> int:
    from flautim.models import SupportTicket, db

    with app.app_context():
        return db.session.scalar(select(func.count(SupportTicket.id)))


def test_failed_run_offers_support_about_it(app, client, world):
    login(client, "leitor@example.org")
    pid = world["project_id"]
    page = client.get(f"/projects/{pid}/experiments/{world['failed']}").get_data(as_text=True)
    assert f'href="/support/new?experiment={world["failed"]}"' in page
    assert "Falar com o suporte sobre este experimento" in page
    running = client.get(f"/projects/{pid}/experiments/{world['running']}").get_data(as_text=True)
    assert "/support/new?experiment=" not in running


def test_ticket_about_an_experiment_reaches_staff_with_it(app, client, world, smtp_server):
    from flautim.models import SupportTicket, db

    login(client, "leitor@example.org")  # a viewer may ask about what they can see
    url = f"/support/new?experiment={world['failed']}"
    form = client.get(url)
    assert form.status_code == 200
    html = form.get_data(as_text=True)
    assert 'data-testid="ticket-experiment"' in html and "Regressão que falhou" in html
    assert re.search(rf'name="experiment" type="hidden" value="{world["failed"]}"', html)
    assert "Regressão que falhou" in re.search(r'name="subject"[^>]*value="([^"]*)"', html).group(1)

    response = client.post(
        "/support/new",
        data={
            "csrf_token": csrf_token_from(html),
            "subject": "Minha regressão falhou",
            "message": "Não entendi o erro de shape.",
            "experiment": str(world["failed"]),
        },
    )
    assert response.status_code == 302
    ticket_path = response.headers["Location"]
    with app.app_context():
        ticket = db.session.scalar(select(SupportTicket))
        assert ticket.experiment_id == world["failed"]
        ticket_id = ticket.id

    [to_staff] = smtp_server.to(app.config["FLAUTIM_SUPPORT_EMAIL"])
    body = smtp_server.body(to_staff)
    assert f"#{world['failed']}" in body and "Regressão que falhou" in body and "Federado" in body
    assert f"/admin/experiments/{world['failed']}" in body

    # The user's thread shows what the ticket is about, linked to the experiment's page.
    thread = client.get(ticket_path).get_data(as_text=True)
    assert f'href="/projects/{world["project_id"]}/experiments/{world["failed"]}"' in thread

    # The admin, no member of the project, follows the ticket to the experiment's facts.
    staff = app.test_client()
    login(staff, "admin@example.org")
    admin_ticket = staff.get(f"/admin/support/{ticket_id}").get_data(as_text=True)
    assert f'href="/admin/experiments/{world["failed"]}"' in admin_ticket
    facts = staff.get(f"/admin/experiments/{world['failed']}")
    assert facts.status_code == 200
    facts_html = facts.get_data(as_text=True)
    assert "api.py:19: shape mismatch" in facts_html and "Federado" in facts_html
    assert f'href="/admin/support/{ticket_id}"' in facts_html
    # Staff pages stay staff-only.
    assert client.get(f"/admin/experiments/{world['failed']}").status_code in (403, 404)


def test_only_an_experiment_the_user_can_see_is_attached(app, client, world, smtp_server):
    login(client, "leitor@example.org")
    # Another tenant's experiment, a missing one, or junk: the form page answers 404...
    for value in (world["foreign"], 999_999, "abc", "-1", "0", "99999999999"):
        assert client.get(f"/support/new?experiment={value}").status_code == 404, value
    # ...and a forged form field is refused with the reason, storing and sending nothing.
    html = client.get("/support/new").get_data(as_text=True)
    for value in (
        str(world["foreign"]),
        "999999",
        "abc",
        "1 OR 1=1",
        "-1",
        "0",
        "2147483648",
        "99999999999",
    ):
        response = client.post(
            "/support/new",
            data={
                "csrf_token": csrf_token_from(html),
                "subject": "Oi",
                "message": "Olá",
                "experiment": value,
            },
        )
        assert response.status_code == 400, value
        page = response.get_data(as_text=True)
        assert "O experimento indicado não existe ou você não tem acesso a ele." in page, value
        assert "Segredo alheio" not in page
    assert _tickets(app) == 0
    assert smtp_server.to(app.config["FLAUTIM_SUPPORT_EMAIL"]) == []

    # The plain contact form still works without an experiment.
    response = client.post(
        "/support/new",
        data={"csrf_token": csrf_token_from(html), "subject": "Oi", "message": "Olá"},
    )
    assert response.status_code == 302 and _tickets(app) == 1


def test_the_ticket_outlives_its_experiment(app, client, world, smtp_server):
    from flautim.models import Experiment, SupportTicket, db

    login(client, "dona@example.org")
    html = client.get(f"/support/new?experiment={world['failed']}").get_data(as_text=True)
    data = {
        "csrf_token": csrf_token_from(html),
        "subject": "S",
        "message": "M",
        "experiment": str(world["failed"]),
    }
    assert client.post("/support/new", data=data).status_code == 302
    with app.app_context():
        db.session.delete(db.session.get(Experiment, world["failed"]))
        db.session.commit()
        ticket = db.session.scalar(select(SupportTicket))
        assert ticket.experiment_id is None
        ticket_id = ticket.id
    assert client.get(f"/support/{ticket_id}").status_code == 200
