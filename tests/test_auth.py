"""Accounts through the real forms: sign-up, login/logout, reset, email change, deletion."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.conftest import PASSWORD, csrf_token_from, login, submit_form

STRONG = "luz do sol em marte 42"


def _user(app, email):
    from flautim.models import User, db

    with app.app_context():
        return db.session.scalar(select(User).where(User.email == email))


def test_signup_logs_in_and_normalises_email(app, client):
    response = submit_form(
        client,
        "/auth/signup",
        {"name": "Ana Souza", "email": "  Ana.Souza@Example.ORG ", "password": STRONG},
    )
    assert response.status_code == 302
    user = _user(app, "ana.souza@example.org")
    assert user is not None and user.name == "Ana Souza"
    page = client.get("/auth/account").get_data(as_text=True)
    assert "ana.souza@example.org" in page


def test_signup_honours_safe_next_only(app, client):
    response = submit_form(
        client,
        "/auth/signup?next=/invitations/abc",
        {"name": "Bia", "email": "bia@example.org", "password": STRONG, "next": "/invitations/abc"},
    )
    assert response.headers["Location"].endswith("/invitations/abc")
    client.post("/auth/logout", data={"csrf_token": csrf_token_from(client.get("/auth/account").get_data(as_text=True))})
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        response = submit_form(
            client, "/auth/login", {"email": "bia@example.org", "password": STRONG, "next": evil}
        )
        assert response.status_code == 302
        assert "evil" not in response.headers["Location"] and "javascript" not in response.headers["Location"]
        client.post("/auth/logout", data={"csrf_token": csrf_token_from(client.get("/auth/account").get_data(as_text=True))})


def test_login_page_carries_next_from_query(client):
    def next_field(url):
        html = client.get(url).get_data(as_text=True)
        return re.search(r'<input id="next" name="next" type="hidden" value="([^"]*)"', html).group(1)

    assert next_field("/auth/login?next=/invitations/tok123") == "/invitations/tok123"
    assert next_field("/auth/signup?next=/invitations/tok123") == "/invitations/tok123"
    assert next_field("/auth/login?next=https://evil.example") == ""


def test_login_wrong_password_and_logout(app, client, make_user):
    make_user("carla@example.org")
    response = submit_form(client, "/auth/login", {"email": "carla@example.org", "password": "wrong password!"})
    assert response.status_code == 200
    assert "Email ou senha incorretos." in response.get_data(as_text=True)
    assert client.get("/auth/account").status_code == 302
    login(client, "CARLA@example.org")
    assert client.get("/auth/account").status_code == 200
    token = csrf_token_from(client.get("/auth/account").get_data(as_text=True))
    assert client.post("/auth/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/auth/account").status_code == 302


def test_remember_me_sets_cookie(app, client, make_user):
    make_user("dora@example.org")
    submit_form(client, "/auth/login", {"email": "dora@example.org", "password": PASSWORD, "remember": "y"})
    assert client.get_cookie("remember_token") is not None


def test_password_reset_by_email_single_use(app, client, make_user, smtp_server):
    make_user("eva@example.org")
    response = submit_form(client, "/auth/forgot", {"email": "eva@example.org"})
    assert response.status_code == 302
    [message] = smtp_server.to("eva@example.org")
    link = smtp_server.first_link(message)
    path = link.split("127.0.0.1:5000", 1)[-1] if "127.0.0.1:5000" in link else re.sub(r"^https?://[^/]+", "", link)
    new = "novas estrelas no ceu 7"
    response = submit_form(client, path, {"password": new, "confirm": new})
    assert response.status_code == 302
    login(client, "eva@example.org", new)
    # The same link again: the password it was bound to has changed.
    response = client.get(path)
    assert response.status_code == 400
    assert "inválido ou já foi usado" in response.get_data(as_text=True)


def test_password_reset_for_unknown_email_says_the_same(client, smtp_server):
    response = submit_form(client, "/auth/forgot", {"email": "nobody@example.org"}, follow_redirects=True)
    assert "Se houver uma conta com este email" in response.get_data(as_text=True)
    assert smtp_server.messages == []


def test_email_change_confirmed_from_new_address(app, client, make_user, smtp_server):
    make_user("fabio@example.org")
    login(client, "fabio@example.org")
    response = submit_form(
        client,
        "/auth/account/email",
        {"email-new_email": "Fabio.Novo@Example.org", "email-current_password": PASSWORD},
        page="/auth/account",
    )
    assert response.status_code == 302
    assert _user(app, "fabio@example.org").pending_email == "fabio.novo@example.org"
    [message] = smtp_server.to("fabio.novo@example.org")
    path = re.sub(r"^https?://[^/]+", "", smtp_server.first_link(message))
    assert client.get(path).status_code == 200
    response = submit_form(client, path, {})
    assert response.status_code == 302
    assert _user(app, "fabio.novo@example.org") is not None
    assert _user(app, "fabio@example.org") is None
    # The old address is told about the change.
    assert smtp_server.to("fabio@example.org")
    # The link is spent.
    assert client.get(path).status_code == 400


def test_password_change_ends_other_sessions_but_not_this_one(app, make_user):
    make_user("gil@example.org")
    first, second = app.test_client(), app.test_client()
    login(first, "gil@example.org")
    login(second, "gil@example.org")
    new = "outra senha bem longa 9"
    response = submit_form(
        first,
        "/auth/account/password",
        {"password-current_password": PASSWORD, "password-password": new, "password-confirm": new},
        page="/auth/account",
    )
    assert response.status_code == 302
    assert first.get("/auth/account").status_code == 200
    assert second.get("/auth/account").status_code == 302


def test_password_change_needs_current_password(app, client, make_user):
    make_user("hugo@example.org")
    login(client, "hugo@example.org")
    new = "outra senha bem longa 9"
    response = submit_form(
        client,
        "/auth/account/password",
        {"password-current_password": "nope nope nope", "password-password": new, "password-confirm": new},
        page="/auth/account",
    )
    assert response.status_code == 400
    assert "Senha incorreta." in response.get_data(as_text=True)


def test_profile_update_name_and_language(app, client, make_user):
    make_user("iara@example.org")
    login(client, "iara@example.org")
    response = submit_form(
        client, "/auth/account/profile", {"profile-name": "Iara Ñandú", "profile-locale": "en"}, page="/auth/account"
    )
    assert response.status_code == 302
    user = _user(app, "iara@example.org")
    assert (user.name, user.locale) == ("Iara Ñandú", "en")


@pytest.fixture
def delete_form():
    return {"delete-current_password": PASSWORD, "delete-confirm": "y"}


def test_delete_account_refused_while_owning_shared_project(app, client, make_user, make_project, delete_form):
    owner = make_user("joao@example.org")
    mate = make_user("kelly@example.org")
    make_project("Compartilhado", owner, editors=[mate])
    login(client, "joao@example.org")
    response = submit_form(client, "/auth/account/delete", delete_form, page="/auth/account")
    assert response.status_code == 400
    assert "Transfira a propriedade" in response.get_data(as_text=True)
    assert _user(app, "joao@example.org") is not None


def test_delete_account_removes_sole_projects_and_keeps_shared_ones(
    app, client, make_user, make_project, delete_form
):
    from flautim.models import Membership, Project, db

    user = make_user("lia@example.org")
    other = make_user("mario@example.org")
    solo = make_project("Sozinha", user)
    shared = make_project("Do Mario", other, viewers=[user])
    login(client, "lia@example.org")
    response = submit_form(client, "/auth/account/delete", delete_form, page="/auth/account")
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Project, solo) is None
        assert db.session.get(Project, shared) is not None
        assert db.session.scalars(select(Membership).where(Membership.project_id == shared)).all()[0].user_id == other
    assert _user(app, "lia@example.org") is None
    assert client.get("/auth/account").status_code == 302


def test_delete_account_needs_password(app, client, make_user):
    make_user("nina@example.org")
    login(client, "nina@example.org")
    response = submit_form(
        client, "/auth/account/delete", {"delete-current_password": "errada errada", "delete-confirm": "y"},
        page="/auth/account",
    )
    assert response.status_code == 400
    assert _user(app, "nina@example.org") is not None


def test_account_page_includes_token_section_when_present(client, make_user):
    make_user("otto@example.org")
    login(client, "otto@example.org")
    html = client.get("/auth/account").get_data(as_text=True)
    for heading in ("Perfil", "Trocar email", "Trocar senha", "Apagar minha conta"):
        assert heading in html


def test_protected_page_sends_to_login_and_back(client, make_user):
    make_user("pia@example.org")
    response = client.get("/support/")
    assert response.status_code == 302
    login_url = response.headers["Location"]
    assert login_url.startswith("/auth/login?next=")
    response = submit_form(client, login_url, {"email": "pia@example.org", "password": PASSWORD, "next": "/support/"})
    assert response.headers["Location"] == "/support/"


def test_logged_in_user_visiting_login_or_signup_is_sent_on(client, make_user):
    make_user("quim@example.org")
    login(client, "quim@example.org")
    assert client.get("/auth/login?next=/support/").headers["Location"] == "/support/"
    assert client.get("/auth/signup?next=//evil.example").headers["Location"] == "/"
