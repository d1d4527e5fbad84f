"""Sign-up abuse: a budget of created accounts per client address, and closed sign-up
(FLAUTIM_SIGNUP_MODE=invitation) where only a valid project invitation link lets one in."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from flautim.models import Invitation, Role, User, db, utcnow
from tests.conftest import PASSWORD, submit_form

BUDGET_SPENT = "Já foram criadas muitas contas a partir do seu endereço de rede"


def _signup(app, email: str, address: str = "203.0.113.7", next_path: str | None = None,
            password: str = PASSWORD, headers: dict | None = None):
    client = app.test_client()  # a fresh browser: a signed-up client is logged in
    client.environ_base["REMOTE_ADDR"] = address
    page = "/auth/signup" + (f"?next={next_path}" if next_path else "")
    data = {"name": email.split("@")[0], "email": email, "password": password}
    if next_path:
        data["next"] = next_path
    return submit_form(client, "/auth/signup", data, page=page, headers=headers or {})


def _accounts(app) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(select(User.email)))


@pytest.mark.parametrize("config_overrides", [{"SIGNUP_LIMIT_PER_IP": "2 per hour"}])
def test_one_address_creates_only_so_many_accounts(app):
    assert [_signup(app, f"u{i}@example.org").status_code for i in range(2)] == [302, 302]
    refused = _signup(app, "u2@example.org")
    assert refused.status_code == 429
    assert BUDGET_SPENT in refused.get_data(as_text=True)
    assert _accounts(app) == {"u0@example.org", "u1@example.org"}
    # Another address has its own budget.
    assert _signup(app, "u3@example.org", address="198.51.100.9").status_code == 302


@pytest.mark.parametrize("config_overrides", [{"SIGNUP_LIMIT_PER_IP": "1 per hour"}])
def test_failed_sign_ups_do_not_use_up_the_budget(app):
    weak = _signup(app, "a@example.org", password="123456")
    assert weak.status_code == 200 and _accounts(app) == set()
    assert _signup(app, "a@example.org").status_code == 302


@pytest.mark.parametrize("config_overrides", [{"SIGNUP_LIMIT_PER_IP": "1 per hour"}])
def test_the_refusal_speaks_english_too(app):
    assert _signup(app, "a@example.org").status_code == 302
    refused = _signup(app, "b@example.org", headers={"Accept-Language": "en"})
    assert refused.status_code == 429
    assert "Too many accounts have been created from your network address" in refused.get_data(as_text=True)


# --- closed sign-up ---------------------------------------------------------------------

@pytest.fixture
def invitation(app, make_user, make_project):
    """invitation(email, expired=False) -> the path of a new invitation link."""
    from flautim.web.projects import invitations as inv

    owner = make_user("dona@example.org")
    pid = make_project("Dígitos", owner)

    def factory(email: str, expired: bool = False) -> str:
        with app.app_context():
            row = Invitation(project_id=pid, email=email, role=Role.EDITOR, invited_by_id=owner)
            token = inv.new_token(row)
            if expired:
                row.expires_at = utcnow() - timedelta(minutes=1)
            db.session.add(row)
            db.session.commit()
            return f"/invitations/{token}"

    return factory


CLOSED = "Neste Flautim, contas novas só são criadas por convite"


@pytest.mark.parametrize("config_overrides", [{"SIGNUP_MODE": "invitation"}])
def test_closed_sign_up_refuses_anyone_without_an_invitation(app, client):
    page = client.get("/auth/signup")
    assert page.status_code == 403 and CLOSED in page.get_data(as_text=True)
    english = client.get("/auth/signup", headers={"Accept-Language": "en"})
    assert "On this Flautim, new accounts are created by invitation only" in english.get_data(as_text=True)
    # Posting the form directly does not get around it (the CSRF token comes from the login page).
    posted = submit_form(
        client, "/auth/signup", {"name": "Eva", "email": "eva@example.org", "password": PASSWORD},
        page="/auth/login",
    )
    assert posted.status_code == 403 and _accounts(app) == set()


@pytest.mark.parametrize("config_overrides", [{"SIGNUP_MODE": "invitation"}])
def test_closed_sign_up_admits_the_invited_email_through_its_link(app, client, invitation):
    link = invitation("nova@example.org")
    form = client.get(f"/auth/signup?next={link}&email=nova@example.org")
    assert form.status_code == 200 and 'value="nova@example.org"' in form.get_data(as_text=True)

    other = _signup(app, "outra@example.org", next_path=link)
    assert other.status_code == 200 and "O convite foi enviado para nova@example.org" in other.get_data(as_text=True)
    assert "outra@example.org" not in _accounts(app)

    created = _signup(app, "nova@example.org", next_path=link)
    assert created.status_code == 302 and created.headers["Location"] == link
    assert "nova@example.org" in _accounts(app)


@pytest.mark.parametrize("config_overrides", [{"SIGNUP_MODE": "invitation"}])
def test_closed_sign_up_refuses_an_expired_or_unknown_invitation(app, client, invitation):
    for link in (invitation("velha@example.org", expired=True), "/invitations/not-a-real-token"):
        response = _signup(app, "velha@example.org", next_path=link)
        assert response.status_code == 403
        assert "O convite deste link não vale mais" in response.get_data(as_text=True)
    assert "velha@example.org" not in _accounts(app)


def test_open_sign_up_stays_open_by_default(app, client):
    assert client.get("/auth/signup").status_code == 200
    assert _signup(app, "livre@example.org").status_code == 302
