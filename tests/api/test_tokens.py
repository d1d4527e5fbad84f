"""Personal access tokens: made in the account pages, shown once, hashed, revocable, and the
only thing that authenticates /api/v1 (never the session cookie)."""

from __future__ import annotations

import hashlib
import re

from sqlalchemy import select

from flautim.models import ApiToken, db
from tests.conftest import login, submit_form

from .conftest import bearer


def _created_secret(html: str) -> str:
    match = re.search(r"(flt_[A-Za-z0-9_-]{20,})", html)
    assert match, "the new token is not on the page"
    return match.group(1)


def test_token_created_in_page_is_shown_once_and_stored_hashed(app, client, make_user):
    make_user("ana@example.org")
    login(client, "ana@example.org")
    response = submit_form(client, "/account/tokens/", {"name": "notebook"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    secret = _created_secret(response.get_data(as_text=True))

    with app.app_context():
        token = db.session.scalars(select(ApiToken)).one()
        assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert token.name == "notebook"
        assert secret.startswith(token.prefix) and len(token.prefix) < 12
        assert token.last_used_at is None

    listing = client.get("/account/tokens/").get_data(as_text=True)
    assert "notebook" in listing and secret not in listing

    api = app.test_client()
    me = api.get("/api/v1/me", headers=bearer(secret))
    assert me.status_code == 200 and me.json["email"] == "ana@example.org"
    with app.app_context():
        assert db.session.scalars(select(ApiToken)).one().last_used_at is not None


def test_token_name_required(client, make_user):
    make_user("ana@example.org")
    login(client, "ana@example.org")
    response = submit_form(client, "/account/tokens/", {"name": "  "})
    assert response.status_code == 400
    assert "Dê um nome ao token." in response.get_data(as_text=True)


def test_token_form_requires_csrf(client, make_user):
    make_user("ana@example.org")
    login(client, "ana@example.org")
    response = client.post("/account/tokens/", data={"name": "x"})
    assert response.status_code == 400


def test_revoked_token_gets_401(app, client, make_user):
    make_user("ana@example.org")
    login(client, "ana@example.org")
    secret = _created_secret(submit_form(client, "/account/tokens/", {"name": "n"}).get_data(as_text=True))
    with app.app_context():
        token_id = db.session.scalars(select(ApiToken.id)).one()
    api = app.test_client()
    assert api.get("/api/v1/me", headers=bearer(secret)).status_code == 200

    response = submit_form(client, f"/account/tokens/{token_id}/revoke", {}, page="/account/tokens/")
    assert response.status_code == 302
    assert "revogado" in client.get("/account/tokens/").get_data(as_text=True)

    refused = api.get("/api/v1/me", headers=bearer(secret))
    assert refused.status_code == 401
    assert refused.json["error"]["code"] == "invalid_token"
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")


def test_cannot_revoke_someone_elses_token(app, client, make_user, make_token):
    other = make_user("bia@example.org")
    secret = make_token(other)
    make_user("ana@example.org")
    login(client, "ana@example.org")
    with app.app_context():
        token_id = db.session.scalars(select(ApiToken.id)).one()
    submit_form(client, f"/account/tokens/{token_id}/revoke", {}, page="/account/tokens/")
    assert app.test_client().get("/api/v1/me", headers=bearer(secret)).status_code == 200


def test_missing_and_malformed_tokens_get_401(client, make_user, make_token):
    secret = make_token(make_user("ana@example.org"))
    missing = client.get("/api/v1/projects")
    assert missing.status_code == 401 and missing.json["error"]["code"] == "missing_token"
    for header in ("Basic abc", "Bearer ", f"Token {secret}", "Bearer flt_wrong", "Bearer " + secret[:-1]):
        response = client.get("/api/v1/projects", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert response.json["error"]["message"]


def test_session_cookie_does_not_authenticate_the_api(client, make_user):
    make_user("ana@example.org")
    login(client, "ana@example.org")
    # The same client carries a logged-in session cookie: the API must still refuse it.
    assert client.get("/projects/").status_code == 200
    response = client.get("/api/v1/projects")
    assert response.status_code == 401
    post = client.post("/api/v1/projects/1/experiments", json={"name": "x"})
    assert post.status_code == 401


def test_deactivated_user_token_refused(app, make_user, make_token, client):
    uid = make_user("ana@example.org")
    secret = make_token(uid)
    with app.app_context():
        from flautim.models import User

        db.session.get(User, uid).active = False
        db.session.commit()
    assert client.get("/api/v1/me", headers=bearer(secret)).status_code == 401


def test_account_page_lists_tokens_and_revoke_returns_there(app, client, make_user, make_token):
    uid = make_user("ana@example.org")
    make_token(uid, name="servidor do lab")
    login(client, "ana@example.org")
    page = client.get("/auth/account").get_data(as_text=True)
    assert "Tokens de acesso pessoal" in page and "servidor do lab" in page
    assert 'action="/account/tokens/"' in page

    created = submit_form(client, "/account/tokens/", {"name": "outro", "next": "/auth/account#tokens"},
                          page="/auth/account")
    assert created.status_code == 201 and 'href="/auth/account#tokens"' in created.get_data(as_text=True)
    with app.app_context():
        token_id = db.session.scalars(select(ApiToken.id).where(ApiToken.name == "servidor do lab")).one()
    revoked = submit_form(client, f"/account/tokens/{token_id}/revoke", {"next": "/auth/account#tokens"},
                          page="/auth/account")
    assert revoked.status_code == 302 and revoked.headers["Location"].endswith("/auth/account#tokens")
    # An off-site `next` is ignored.
    again = submit_form(client, "/account/tokens/", {"name": "x", "next": "//evil.example/"}, page="/auth/account")
    assert "evil.example" not in again.get_data(as_text=True)
