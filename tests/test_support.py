"""Support tickets end to end over real SMTP: the user writes, an admin answers, both see it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.conftest import REDIS_URL, free_port, login, submit_form

# Rate-limit counters live in Redis; a database of our own keeps them apart from test modules
# that flush the shared test database (db 15) while a test here counts messages.
OWN_REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/12"


@pytest.fixture
def config_overrides():
    import redis

    redis.Redis.from_url(OWN_REDIS_URL).flushdb()
    return {"REDIS_URL": OWN_REDIS_URL}


def _path(link: str) -> str:
    return re.sub(r"^https?://[^/]+", "", link)


def test_ticket_round_trip_with_emails(app, make_user, smtp_server):
    from flautim.models import SupportTicket, db

    make_user("ana@example.org", name="Ana Lima")
    make_user("admin@example.org", name="Admin", is_admin=True)
    user, staff = app.test_client(), app.test_client()
    login(user, "ana@example.org")
    login(staff, "admin@example.org")

    response = submit_form(
        user, "/support/new", {"subject": "Experimento travado", "message": "O experimento 3 não sai da fila."}
    )
    assert response.status_code == 302
    ticket_path = response.headers["Location"]
    with app.app_context():
        ticket = db.session.scalar(select(SupportTicket))
        ticket_id = ticket.id
        assert ticket.status == "open"

    [to_staff] = smtp_server.to(app.config["FLAUTIM_SUPPORT_EMAIL"])
    assert "Experimento travado" in to_staff["Subject"]
    assert to_staff["Reply-To"] == "ana@example.org"
    assert "O experimento 3 não sai da fila." in smtp_server.body(to_staff)

    # The admin answers from the inbox.
    inbox = staff.get("/admin/support").get_data(as_text=True)
    assert "Experimento travado" in inbox and "ana@example.org" in inbox
    response = submit_form(staff, f"/admin/support/{ticket_id}", {"body": "Reiniciamos o worker; tente de novo."})
    assert response.status_code == 302

    [answer] = smtp_server.to("ana@example.org")
    assert "Resposta" in answer["Subject"]
    body = smtp_server.body(answer)
    assert "Reiniciamos o worker; tente de novo." in body
    link = smtp_server.first_link(answer)
    assert _path(link) == ticket_path

    thread = user.get(ticket_path).get_data(as_text=True)
    assert "O experimento 3 não sai da fila." in thread
    assert "Reiniciamos o worker; tente de novo." in thread
    assert "Respondido" in thread

    # The user replies in the thread; staff is told again and the ticket reopens.
    assert submit_form(user, ticket_path, {"body": "Funcionou, obrigada!"}).status_code == 302
    assert len(smtp_server.to(app.config["FLAUTIM_SUPPORT_EMAIL"])) == 2
    with app.app_context():
        ticket = db.session.get(SupportTicket, ticket_id)
        assert ticket.status == "open"
        assert [m.from_staff for m in ticket.messages] == [False, True, False]


def test_users_only_see_their_own_tickets(app, make_user, smtp_server):
    make_user("bia@example.org")
    make_user("caio@example.org")
    bia, caio = app.test_client(), app.test_client()
    login(bia, "bia@example.org")
    login(caio, "caio@example.org")
    response = submit_form(bia, "/support/new", {"subject": "Segredo da Bia", "message": "privado"})
    path = response.headers["Location"]
    assert caio.get(path).status_code == 404
    assert caio.post(path, data={"body": "intruso"}).status_code in (400, 404)
    assert "Segredo da Bia" not in caio.get("/support/").get_data(as_text=True)
    assert "Segredo da Bia" in bia.get("/support/").get_data(as_text=True)
    # Not an admin: the staff side of the same ticket does not exist for them.
    assert caio.get(path.replace("/support/", "/admin/support/")).status_code == 404


def test_support_needs_login(client):
    response = client.get("/support/")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_empty_and_over_long_ticket_fields(app, client, make_user, smtp_server):
    make_user("davi@example.org")
    login(client, "davi@example.org")
    response = submit_form(client, "/support/new", {"subject": "  ", "message": ""})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Informe o assunto." in page and "Escreva a mensagem." in page
    response = submit_form(client, "/support/new", {"subject": "x" * 201, "message": "ok"})
    assert "no máximo 200 caracteres" in response.get_data(as_text=True)
    assert smtp_server.messages == []


def test_ticket_saved_even_when_mail_server_is_down(app, client, make_user):
    from flautim.models import SupportTicket, db

    make_user("eli@example.org")
    login(client, "eli@example.org")
    # An SMTP host that refuses connections: nothing listens on a just-freed port.
    cfg = app.extensions["flautim_config"]
    cfg.SMTP_HOST, cfg.SMTP_PORT = "127.0.0.1", free_port()
    response = submit_form(client, "/support/new", {"subject": "Sem email", "message": "teste"}, follow_redirects=True)
    assert response.status_code == 200
    assert "aviso por email ao suporte falhou" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(SupportTicket.subject)) == "Sem email"


def test_messages_per_user_are_rate_limited(app, make_user, smtp_server):
    app.extensions["flautim_config"].SUPPORT_LIMIT_PER_USER = "3 per minute"
    make_user("fred@example.org")
    make_user("gabi@example.org")
    fred, gabi = app.test_client(), app.test_client()
    login(fred, "fred@example.org")
    login(gabi, "gabi@example.org")
    response = submit_form(fred, "/support/new", {"subject": "Um", "message": "1"})
    path = response.headers["Location"]
    assert submit_form(fred, path, {"body": "2"}).status_code == 302
    assert submit_form(fred, "/support/new", {"subject": "Três", "message": "3"}).status_code == 302
    # The limit is shared by new tickets and replies, and is per user.
    response = submit_form(fred, path, {"body": "4"})
    assert response.status_code == 429
    assert "Muitas tentativas" in response.get_data(as_text=True)
    assert submit_form(gabi, "/support/new", {"subject": "Outra pessoa", "message": "ok"}).status_code == 302
    assert len(smtp_server.to(app.config["FLAUTIM_SUPPORT_EMAIL"])) == 4


def test_answer_email_is_in_the_users_language(app, make_user, smtp_server):
    make_user("hana@example.org", locale="en")
    make_user("boss@example.org", is_admin=True)
    hana, staff = app.test_client(), app.test_client()
    login(hana, "hana@example.org")
    login(staff, "boss@example.org")
    path = submit_form(hana, "/support/new", {"subject": "Login help", "message": "hi"}).headers["Location"]
    ticket_id = path.rstrip("/").rsplit("/", 1)[1]
    submit_form(staff, f"/admin/support/{ticket_id}", {"body": "Done."})
    [answer] = smtp_server.to("hana@example.org")
    assert answer["Subject"] == f"[Flautim support #{ticket_id}] Answer: Login help"
    assert "The support team answered your ticket" in smtp_server.body(answer)
