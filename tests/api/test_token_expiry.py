"""API tokens expire (a lifetime chosen at creation, 90 days unless chosen otherwise), and a
new password takes them along: on by default after a change (a box to untick) and a reset."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from flautim.models import ApiToken, User, db, utcnow
from flautim.web.auth.tokens import make_reset_token
from tests.conftest import PASSWORD, csrf_token_from, login, submit_form

from .conftest import bearer

NEW_PASSWORD = "violeta girassol 2026"


def _create(client, **data):
    response = submit_form(client, "/account/tokens/", {"name": "notebook", **data})
    match = re.search(r"(flt_[A-Za-z0-9_-]{20,})", response.get_data(as_text=True))
    return response, match.group(1) if match else None


def _lifetime_days(app) -> float:
    with app.app_context():
        token = db.session.scalars(select(ApiToken).order_by(ApiToken.id.desc())).first()
        return (token.expires_at - token.created_at) / timedelta(days=1)


def test_a_new_token_expires_in_90_days_unless_its_owner_chooses(app, client, make_user):
    make_user("ana@example.org")
    login(client, "ana@example.org")
    form = client.get("/account/tokens/").get_data(as_text=True)
    assert re.search(r'<option selected value="90">', form) or re.search(r'value="90" selected', form)

    response, secret = _create(client)
    assert response.status_code == 201 and round(_lifetime_days(app)) == 90
    response, _secret = _create(client, days="7")
    assert response.status_code == 201 and round(_lifetime_days(app)) == 7
    # Past the longest lifetime the site allows: refused, no token made.
    response, secret = _create(client, days="5000")
    assert response.status_code == 400 and secret is None


def test_an_expired_token_gets_a_401_that_says_so(app, client, make_user, make_token):
    uid = make_user("ana@example.org")
    secret = make_token(uid)
    api = app.test_client()
    assert api.get("/api/v1/me", headers=bearer(secret)).status_code == 200
    with app.app_context():
        token = db.session.scalars(select(ApiToken)).one()
        token.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()

    refused = api.get("/api/v1/me", headers=bearer(secret))
    assert refused.status_code == 401
    assert refused.json["error"]["code"] == "expired_token"
    assert "expirou" in refused.json["error"]["message"]
    english = api.get("/api/v1/me", headers={**bearer(secret), "Accept-Language": "en"})
    assert "This token expired on" in english.json["error"]["message"]
    # On an experiment's URL (the path that fetches the token with the project's rows) too.
    on_object = api.get("/api/v1/projects/1/experiments/1", headers=bearer(secret))
    assert on_object.status_code == 401 and on_object.json["error"]["code"] == "expired_token"

    login(client, "ana@example.org")
    assert "expirado" in client.get("/account/tokens/").get_data(as_text=True)


def _change_password(client, **extra):
    return submit_form(
        client,
        "/auth/account/password",
        {"password-current_password": PASSWORD, "password-password": NEW_PASSWORD,
         "password-confirm": NEW_PASSWORD, **extra},
        page="/auth/account",
    )


def test_a_password_change_revokes_the_api_tokens_by_default(app, client, make_user, make_token):
    uid = make_user("ana@example.org")
    secrets = [make_token(uid, "a"), make_token(uid, "b")]
    login(client, "ana@example.org")
    page = client.get("/auth/account").get_data(as_text=True)
    assert re.search(r'<input checked id="password-revoke_tokens"[^>]*type="checkbox"', page)

    response = _change_password(client, **{"password-revoke_tokens": "y"})
    assert response.status_code == 302
    assert "2 tokens de acesso à API foram revogados." in client.get("/auth/account").get_data(as_text=True)
    api = app.test_client()
    for secret in secrets:
        assert api.get("/api/v1/me", headers=bearer(secret)).status_code == 401


def test_unticking_the_box_keeps_the_tokens(app, client, make_user, make_token):
    uid = make_user("ana@example.org")
    secret = make_token(uid)
    login(client, "ana@example.org")
    assert _change_password(client).status_code == 302  # an unticked box is not sent
    assert app.test_client().get("/api/v1/me", headers=bearer(secret)).status_code == 200


@pytest.mark.parametrize("keep", [False, True])
def test_a_password_reset_revokes_the_api_tokens_unless_told_not_to(app, client, make_user, make_token, keep):
    uid = make_user("ana@example.org")
    secret = make_token(uid)
    with app.test_request_context():
        reset_link = "/auth/reset/" + make_reset_token(db.session.get(User, uid))
    page = client.get(reset_link).get_data(as_text=True)
    assert re.search(r'<input checked id="revoke_tokens"', page)
    data = {"csrf_token": csrf_token_from(page), "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    if not keep:
        data["revoke_tokens"] = "y"
    assert client.post(reset_link, data=data).status_code == 302
    status = app.test_client().get("/api/v1/me", headers=bearer(secret)).status_code
    assert status == (200 if keep else 401)
